"""Reads of the knowledge base: retrieval for the AI pipeline and the admin, import jobs.

Every query runs in the current tenant's schema (search_path), so nothing here can see
another tenant's entries or jobs.

Retrieval
---------
The customer's question is segmented like the entries (kb.segmentation) into words, plus
the Han characters of its multi-character words. Entries whose tsvector matches any of
them (an OR tsquery, served by the GIN index) are ranked by

    score = min(1, 1.645 * (0.8 * ts_rank(W, vector, words) + 0.2 * ts_rank(W, vector, chars)))

with W = {A: 1.0, B: 0.4, C: 0.4, D: 0.1}: A = words of the entry's question and tags,
B = their characters, C = words of the answer, D = its characters. ts_rank of an OR query
is the mean, over the distinct query terms, of the weight of the best place the term
occurs (one occurrence counts 1/1.645 of it, repeats add up to the full weight); the factor
1.645 makes one occurrence count fully. So, in plain words:

    score = the share of the customer's meaningful words that the entry contains, a word
    counting 1 in the entry's question or tags and 0.4 in its answer only, with the
    characters of those words contributing a fifth (a question with no multi-character
    word is scored on its words alone).

1.0: every word of the question appears in the entry's question or tags (an entry's own
question scores 1.0). Scores are comparable across entries and tenants, not across wordings
of a question. Paraphrases that share few words score low even when right: on the shop
corpus of kb/tests (20 paraphrased questions) the right entry ranked first every time with
0.14 to 0.90 (median 0.55), while runners-up stayed at or below 0.26, except a closely
related entry (the VAT-invoice entry for a plain invoice question, 0.49). So a
"knowledge-only" threshold is a precision dial: 0.3 answered 13 of the 20 paraphrases
there and never with a wrong entry; lower catches more paraphrases at the price of some
wrong hits.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from kb.models import KnowledgeEntry, KnowledgeImport
from kb.progress import read_progress
from kb.segmentation import han_characters, segment, unique

RANK_WEIGHTS = [0.1, 0.4, 0.4, 1.0]  # D, C, B, A (PostgreSQL's order)
WORDS_SHARE = 0.8
ONE_OCCURRENCE = 1.64493406685  # ts_rank divides a single occurrence by pi^2/6
MAX_LIMIT = 50
MAX_QUERY_CHARS = 1000  # a pasted essay must not become a thousand-term OR query


@dataclass(frozen=True)
class KnowledgeMatch:
    entry: KnowledgeEntry
    score: float  # in [0, 1], see the module docstring
    matched_terms: list[str]  # the query's words (then characters) found in the entry


def _tsquery(tokens: list[str]) -> str:
    # tokens are letters and digits only (kb.segmentation), quoted anyway for to_tsquery
    return " | ".join("'" + token.replace("'", "''") + "'" for token in tokens)


def search_knowledge(query: str, *, limit: int = 5) -> list[KnowledgeMatch]:
    """The enabled entries of the current tenant that best answer `query`, best first."""
    return search_knowledge_many([query], limit=limit)[0]


# The ranking above, for many questions in one statement (the answer pipeline asks a round's
# worth at once): each question's words and characters as tsqueries, its best entries through
# the GIN index in a LATERAL subquery.
_SEARCH_SQL = """
SELECT q.n AS query_number, e.*, tsvector_to_array(e.search_vector) AS lexemes
FROM unnest(%(words)s::text[], %(chars)s::text[]) WITH ORDINALITY AS q(words, chars, n)
CROSS JOIN LATERAL (
    SELECT e.*, LEAST(1.0, %(one)s * CASE WHEN q.chars = ''
               THEN ts_rank(%(weights)s::float4[], e.search_vector, to_tsquery('simple', q.words))
               ELSE %(share)s * ts_rank(%(weights)s::float4[], e.search_vector, to_tsquery('simple', q.words))
                    + (1 - %(share)s) * ts_rank(%(weights)s::float4[], e.search_vector, to_tsquery('simple', q.chars))
               END) AS score
    FROM {table} e
    WHERE e.enabled AND e.search_vector @@ CASE WHEN q.chars = '' THEN to_tsquery('simple', q.words)
                                               ELSE to_tsquery('simple', q.words || ' | ' || q.chars) END
    ORDER BY score DESC, e.id
    LIMIT %(limit)s
) e
ORDER BY q.n, e.score DESC, e.id
"""


def enabled_entries(*, ids: list[int]) -> dict[int, KnowledgeEntry]:
    """The current tenant's enabled entries among `ids` (e.g. clicked in a menu), by id."""
    return {entry.pk: entry for entry in KnowledgeEntry.objects.filter(pk__in=ids, enabled=True)}


def search_knowledge_many(queries: list[str], *, limit: int = 5) -> list[list[KnowledgeMatch]]:
    """search_knowledge() of each query, in one statement."""
    limit = max(1, min(limit, MAX_LIMIT))
    terms = []
    for query in queries:
        words = unique(segment(query[:MAX_QUERY_CHARS]).terms)
        terms.append((words, [char for char in unique(han_characters(words)) if char not in words]))
    matches: list[list[KnowledgeMatch]] = [[] for _ in queries]
    asked = [(number, words, chars) for number, (words, chars) in enumerate(terms, start=1) if words]
    if not asked:
        return matches
    rows = KnowledgeEntry.objects.raw(_SEARCH_SQL.format(table=KnowledgeEntry._meta.db_table), {
        "words": [_tsquery(words) for _, words, _ in asked], "chars": [_tsquery(chars) for _, _, chars in asked],
        "one": ONE_OCCURRENCE, "share": WORDS_SHARE, "weights": RANK_WEIGHTS, "limit": limit})
    numbers = [number for number, _, _ in asked]
    for entry in rows:
        words, chars = terms[numbers[entry.query_number - 1] - 1]
        present = set(entry.lexemes)
        matches[numbers[entry.query_number - 1] - 1].append(KnowledgeMatch(
            entry=entry, score=round(entry.score, 4),
            matched_terms=[token for token in [*words, *chars] if token in present]))
    return matches


def access_import(*, job_id) -> KnowledgeImport | None:
    """The import job of the current tenant with this id, or None (the same for another
    tenant's job: ids cannot be probed across tenants)."""
    return KnowledgeImport.objects.defer("content").filter(pk=job_id).first()


def import_progress(*, job: KnowledgeImport) -> dict:
    """What the progress bar shows: the durable outcome once there is one, else Redis' live count."""
    payload = {"id": str(job.id), "status": job.status, "total": job.total_rows, "created": job.created_count,
               "updated": job.updated_count, "errors": job.errors}
    if job.status == KnowledgeImport.Status.PENDING:
        live = read_progress(str(job.id)) or {}
        total = int(live.get("total") or job.total_rows or 0)
        done = min(int(live.get("done") or 0), total)
        payload.update(phase=live.get("phase", "queued"), done=done,
                       percent=int(100 * done / total) if total else 0)
        if payload["percent"] == 100:
            payload["percent"] = 99  # written, not yet committed
    else:
        payload.update(phase=job.status, done=job.total_rows if job.status == KnowledgeImport.Status.SUCCEEDED
                       else 0, percent=100)
    return payload


def popular_tags(*, limit: int = 30) -> list[str]:
    """Tags in use, most frequent first (the admin's tag filter)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tag FROM (SELECT unnest(tags) AS tag FROM kb_knowledgeentry) t "
                       "GROUP BY tag ORDER BY count(*) DESC, tag LIMIT %s", [limit])
        return [row[0] for row in cursor.fetchall()]
