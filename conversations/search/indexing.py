"""The message-text index's writer: a batch job (the scheduler sends it per tenant, a worker runs it), never
the message path, which keeps its INSERT as it was (no segmentation, no GIN update per message).

The watermark is the highest message id in the index. A batch reads the next messages after it in id order and
indexes those that are settled, written more than SETTLE_SECONDS ago; it stops at the first one that is not.
A message's transaction commits within moments of its created_at (the message path sets it just before the
INSERT), so once a message is settled no message with a lower id can still commit: the index holds every
message up to the watermark, none skipped. Messages after it (the last minute, or a backlog) are what the
search matches by substring instead (conversations/search/selectors.py), so nothing is missing from results.

Safe to run twice or at once: one indexer per tenant at a time (an advisory lock; a second one returns at once),
and an entry that exists already is left as it is (ON CONFLICT DO NOTHING). Transcript lines are never edited,
so an entry never goes stale; a deleted message takes its entry with it (CASCADE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import takewhile

import structlog
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from conversations.models import Message
from conversations.search.models import MessageSearchEntry
from conversations.search.terms import index_terms

logger = structlog.get_logger("conversations.search")

SETTLE_SECONDS = 60
BATCH_MESSAGES = 500
# Per job run (about 20,000 messages, some seconds of segmentation): a large backlog (the first run after the
# upgrade) is worked off over several runs, as the scheduler sends the job again while there is work.
MAX_BATCHES = 40


@dataclass(frozen=True, kw_only=True)
class IndexRun:
    indexed: int
    watermark: int
    busy: bool = False  # another indexer of this tenant held the lock: this run did nothing


def indexed_up_to() -> int:
    """The watermark: every message of the tenant up to this id is in the index."""
    return MessageSearchEntry.objects.aggregate(mark=Max("message_id"))["mark"] or 0


def _settled_before():
    return timezone.now() - timedelta(seconds=SETTLE_SECONDS)


def has_unindexed_messages() -> bool:
    """Whether the job would index something now: the first message after the watermark is settled (the
    scheduler's cheap check before sending the job; one row read through the primary key)."""
    first = Message.objects.filter(pk__gt=indexed_up_to()).order_by("pk").values_list("created_at", flat=True)[:1]
    return bool(first) and first[0] < _settled_before()


def index_messages(*, batch: int = BATCH_MESSAGES, max_batches: int = MAX_BATCHES) -> IndexRun:
    """Index the settled messages after the watermark, `batch` per transaction, until none is left or
    `max_batches` were done."""
    indexed = 0
    for _ in range(max_batches):
        with transaction.atomic():
            if not _try_lock():
                logger.info("conversations.search.index_busy", tenant=connection.schema_name)
                return IndexRun(indexed=indexed, watermark=indexed_up_to(), busy=True)
            written, caught_up = _index_batch(batch)
        indexed += written
        if caught_up:
            break
    watermark = indexed_up_to()
    if indexed:
        logger.info("conversations.search.indexed", tenant=connection.schema_name, messages=indexed,
                    watermark=watermark)
    return IndexRun(indexed=indexed, watermark=watermark)


def _try_lock() -> bool:
    # Advisory locks are database-wide, hence the schema in the key; released with the transaction.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [f"{connection.schema_name}:message_index"])
        return cursor.fetchone()[0]


def _index_batch(batch: int) -> tuple[int, bool]:
    """(messages indexed, whether the index has caught up with the settled messages)."""
    cutoff = _settled_before()
    rows = list(Message.objects.filter(pk__gt=indexed_up_to()).order_by("pk")
                .values_list("pk", "conversation_id", "created_at", "text")[:batch])
    settled = list(takewhile(lambda row: row[2] < cutoff, rows))
    MessageSearchEntry.objects.bulk_create(
        [MessageSearchEntry(message_id=pk, conversation_id=conversation_id, created_at=created_at,
                            terms=index_terms(text)) for pk, conversation_id, created_at, text in settled],
        ignore_conflicts=True)
    return len(settled), len(settled) < len(rows) or len(rows) < batch
