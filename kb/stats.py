"""Uses and ratings of knowledge entries (kb.models.EntryStats), counted by the answering pipeline.

Each call is one upsert statement, inside the caller's transaction: a round's answers are counted
together, and a rating changed from 👍 to 👎 moves one count from one column to the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from kb.models import EntryStats, KnowledgeEntry

HELPFUL = "helpful"
UNHELPFUL = "unhelpful"
_COLUMNS = {HELPFUL: "helpful_count", UNHELPFUL: "unhelpful_count"}

# Entries deleted meanwhile are skipped (the join), so a count never fails an answer.
_COUNT_USES_SQL = """
INSERT INTO {table} AS s (entry_id, used_count, helpful_count, unhelpful_count, last_used_at)
SELECT e.id, u.uses, 0, 0, %(now)s
FROM unnest(%(ids)s::bigint[], %(uses)s::int[]) AS u(id, uses) JOIN {entries} e ON e.id = u.id
ON CONFLICT (entry_id) DO UPDATE SET used_count = s.used_count + EXCLUDED.used_count, last_used_at = %(now)s
"""

_RATE_SQL = """
INSERT INTO {table} AS s (entry_id, used_count, helpful_count, unhelpful_count)
SELECT e.id, 0, GREATEST(0, %(helpful)s), GREATEST(0, %(unhelpful)s) FROM {entries} e WHERE e.id = %(id)s
ON CONFLICT (entry_id) DO UPDATE SET helpful_count = GREATEST(0, s.helpful_count + %(helpful)s),
                                     unhelpful_count = GREATEST(0, s.unhelpful_count + %(unhelpful)s)
"""


def _tables() -> dict[str, str]:
    return {"table": EntryStats._meta.db_table, "entries": KnowledgeEntry._meta.db_table}


def count_uses(entry_ids: Iterable[int]) -> None:
    """One more use of each entry per occurrence in `entry_ids`."""
    uses = Counter(entry_ids)
    if not uses:
        return
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_USES_SQL.format(**_tables()),
                       {"ids": list(uses), "uses": list(uses.values()), "now": timezone.now()})


def count_rating(*, entry_id: int, rating: str, replaces: str | None = None) -> None:
    """Count a rating (HELPFUL or UNHELPFUL) of an answer from this entry; `replaces`: the answer's earlier
    rating, taken back."""
    delta = {HELPFUL: 0, UNHELPFUL: 0}
    delta[rating] += 1
    if replaces is not None:
        delta[replaces] -= 1
    if not any(delta.values()):
        return
    with connection.cursor() as cursor:
        cursor.execute(_RATE_SQL.format(**_tables()),
                       {"id": entry_id, "helpful": delta[HELPFUL], "unhelpful": delta[UNHELPFUL]})
