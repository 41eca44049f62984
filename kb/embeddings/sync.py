"""Writing entries' vectors: the work of the embed jobs (kb/actors.py), of a re-embed after the model
changed, and of the sweeper that finds entries whose vectors are missing or older than their text.

1. `enqueue_embedding(entry_ids)`: called by kb.services when entries are created, edited or imported.
2. `embed_entries(entry_ids)`: the job: texts whose hash is unchanged are skipped, the rest embedded in
   batches and written under the entries' row locks, so a vector is never older than its entry's text.
3. `reembed_all()`: every entry under the current model, with progress in Redis (kb.progress), then the
   vectors of other models are deleted.
4. `sweep_embeddings()`: the sweeper (kb/schedule.py): the broker is not the source of truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from kb.embeddings.base import Embedder, EmbeddingError, to_bytes
from kb.embeddings.providers import current_embedder, embeddings_enabled
from kb.embeddings.texts import KINDS, entry_texts, text_hash
from kb.embeddings.version import bump_embeddings_version_on_commit
from kb.jobs import enqueue_embed_entries, enqueue_reembed_all
from kb.models import EntryEmbedding, KnowledgeEntry
from kb.progress import store_embedding_progress

logger = structlog.get_logger("kb.embeddings")

BATCH_ENTRIES = 32  # 64 texts per call to the model: one request to a remote provider
JOB_ENTRIES = 500  # entry ids per job: a 500-row import is one job
SWEEP_MAX_ENTRIES = 5000  # per sweep and tenant; the next sweep takes the rest
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class EmbedResult:
    model_id: str | None  # None: embeddings are off, nothing was done
    embedded: int = 0  # vectors written
    unchanged: int = 0  # vectors whose text had not changed (not embedded again)
    gone: int = 0  # entries deleted before the job ran


# -- 1. enqueue -----------------------------------------------------------------------------------------


def enqueue_embedding(entry_ids: Iterable[int], *, force: bool = False) -> int:
    """Embed these entries in a worker once the current transaction commits (in jobs of JOB_ENTRIES);
    `force`: even texts already embedded (an operator's "re-embed"). Returns the number of jobs."""
    if not embeddings_enabled():
        return 0
    ids = sorted(set(entry_ids))
    for start in range(0, len(ids), JOB_ENTRIES):
        enqueue_embed_entries(ids[start:start + JOB_ENTRIES], force=force)
    return -(-len(ids) // JOB_ENTRIES)


def request_reembed() -> None:
    """The model changed (or an operator asked): re-embed every entry in the background."""
    embedder = current_embedder()
    if embedder is None:
        return
    total = KnowledgeEntry.objects.count()
    schema = connection.schema_name

    def queued() -> None:
        store_embedding_progress(phase="queued", done=0, total=total, model_id=embedder.model_id)

    transaction.on_commit(queued, robust=True)
    enqueue_reembed_all()
    logger.info("kb.embeddings.reembed_requested", tenant=schema, model=embedder.model_id, entries=total)


# -- 2. embed some entries ------------------------------------------------------------------------------


def embed_entries(*, entry_ids: Iterable[int], embedder: Embedder | None = None, force: bool = False,
                  on_progress: ProgressCallback | None = None) -> EmbedResult:
    """Write the current model's vectors of these entries. Idempotent: unchanged texts are skipped (unless
    `force`). Raises EmbeddingError when the model fails; what was written before stays."""
    embedder = embedder or current_embedder()
    if embedder is None:
        return EmbedResult(model_id=None)
    ids = sorted(set(entry_ids))
    embedded = unchanged = gone = 0
    for start in range(0, len(ids), BATCH_ENTRIES):
        batch = ids[start:start + BATCH_ENTRIES]
        written, skipped, missing = _embed_batch(batch, embedder, force=force)
        embedded, unchanged, gone = embedded + written, unchanged + skipped, gone + missing
        if on_progress:
            on_progress(min(start + BATCH_ENTRIES, len(ids)), len(ids))
    result = EmbedResult(model_id=embedder.model_id, embedded=embedded, unchanged=unchanged, gone=gone)
    logger.info("kb.embeddings.embedded", tenant=connection.schema_name, model=embedder.model_id,
                entries=len(ids), vectors=embedded, unchanged=unchanged, gone=gone)
    return result


def _wanted(entries: Iterable[KnowledgeEntry]) -> dict[tuple[int, str], tuple[str, str]]:
    """{(entry id, kind): (text, hash)}"""
    wanted = {}
    for entry in entries:
        for kind, text in entry_texts(question=entry.question, tags=entry.tags, answer=entry.answer).items():
            wanted[(entry.pk, kind)] = (text, text_hash(text))
    return wanted


def _embed_batch(ids: list[int], embedder: Embedder, *, force: bool) -> tuple[int, int, int]:
    model_id = embedder.model_id
    fields = ("pk", "question", "tags", "answer")
    wanted = _wanted(KnowledgeEntry.objects.filter(pk__in=ids).only(*fields))
    stored = {(row.entry_id, row.kind): row.text_hash for row in
              EntryEmbedding.objects.filter(entry_id__in=ids, model_id=model_id).only("entry_id", "kind", "text_hash")}
    todo = [key for key, (_text, digest) in wanted.items() if force or stored.get(key) != digest]
    unchanged_entries = sorted({entry_id for (entry_id, _kind) in wanted} - {entry_id for entry_id, _kind in todo})
    gone = len(set(ids) - {entry_id for entry_id, _kind in wanted})
    # The model runs outside any transaction: a remote call may take seconds and must hold no lock.
    vectors = embedder.embed([wanted[key][0] for key in todo]) if todo else None
    if vectors is not None and (vectors.ndim != 2 or vectors.shape[0] != len(todo)):
        raise EmbeddingError(f"{model_id} returned {vectors.shape} for {len(todo)} texts", retryable=False)
    with transaction.atomic():
        # Locked in id order, the lock update_entry takes: an edit that committed while the model ran has
        # a different hash now, and its own job embeds it; writing ours would put an old text's vector back.
        current = _wanted(KnowledgeEntry.objects.select_for_update(no_key=True).filter(pk__in=ids)
                          .order_by("pk").only(*fields))
        rows = [
            EntryEmbedding(entry_id=entry_id, kind=kind, model_id=model_id, dims=vector.shape[0],
                           vector=to_bytes(vector), text_hash=wanted[(entry_id, kind)][1])
            for (entry_id, kind), vector in zip(todo, vectors if vectors is not None else [], strict=True)
            if current.get((entry_id, kind), (None, None))[1] == wanted[(entry_id, kind)][1]
        ]
        if rows:
            EntryEmbedding.objects.bulk_create(rows, update_conflicts=True,
                                               unique_fields=["entry", "kind", "model_id"],
                                               update_fields=["dims", "vector", "text_hash", "created_at"])
            bump_embeddings_version_on_commit()
        if unchanged_entries:
            # Checked now: the sweeper compares this time with the entry's, and finds nothing to do.
            EntryEmbedding.objects.filter(entry_id__in=unchanged_entries, model_id=model_id).update(
                created_at=timezone.now())
    return len(rows), len(wanted) - len(todo), gone


# -- 3. re-embed everything -----------------------------------------------------------------------------


def reembed_all(*, embedder: Embedder | None = None) -> EmbedResult:
    """Every entry under the current model, with progress; then other models' vectors are deleted.

    Until it completes, entries keep their old vectors (searches only compare vectors of the query's model,
    so those entries are found lexically meanwhile). Raises EmbeddingError (progress says "failed").
    """
    embedder = embedder or current_embedder()
    if embedder is None:
        return EmbedResult(model_id=None)
    model_id = embedder.model_id
    ids = list(KnowledgeEntry.objects.order_by("pk").values_list("pk", flat=True))
    store_embedding_progress(phase="embedding", done=0, total=len(ids), model_id=model_id)

    def report(done: int, total: int) -> None:
        store_embedding_progress(phase="embedding", done=done, total=total, model_id=model_id)

    try:
        result = embed_entries(entry_ids=ids, embedder=embedder, on_progress=report)
    except EmbeddingError as exc:
        store_embedding_progress(phase="failed", done=0, total=len(ids), model_id=model_id, error=str(exc))
        raise
    pruned = prune_other_models(model_id=model_id)
    store_embedding_progress(phase="succeeded", done=len(ids), total=len(ids), model_id=model_id)
    logger.info("kb.embeddings.reembedded", tenant=connection.schema_name, model=model_id, entries=len(ids),
                vectors=result.embedded, pruned=pruned)
    return result


def prune_other_models(*, model_id: str) -> int:
    """Delete the vectors of every model but this one (after a completed re-embed)."""
    with transaction.atomic():
        deleted, _detail = EntryEmbedding.objects.exclude(model_id=model_id).delete()
        if deleted:
            bump_embeddings_version_on_commit()
    return deleted


# -- 4. the sweeper -------------------------------------------------------------------------------------


def stale_entry_ids(*, model_id: str, older_than_seconds: int = 0, limit: int = SWEEP_MAX_ENTRIES) -> list[int]:
    """Entries (unchanged for older_than_seconds) lacking a vector of some kind under the model, or whose
    vectors were written (or last checked) before the entry's last change."""
    deadline = timezone.now() - timedelta(seconds=older_than_seconds)
    fresh = Count("embeddings", filter=Q(embeddings__model_id=model_id,
                                         embeddings__created_at__gte=F("updated_at")))
    return list(KnowledgeEntry.objects.filter(updated_at__lt=deadline).annotate(fresh=fresh)
                .filter(fresh__lt=len(KINDS)).order_by("pk").values_list("pk", flat=True)[:limit])


@dataclass(frozen=True)
class SweepResult:
    enqueued: int = 0  # entries sent to embed jobs
    pruned: int = 0  # vectors of other models deleted


def sweep_embeddings(*, older_than_seconds: int) -> SweepResult:
    """Invariant 4 (the broker is not the source of truth): entries whose embed job was lost get one
    again; once every entry has the current model's vectors, the other models' vectors go (a lost
    re-embed job finishes this way)."""
    embedder = current_embedder()
    if embedder is None:
        return SweepResult()
    stale = stale_entry_ids(model_id=embedder.model_id, older_than_seconds=older_than_seconds)
    if stale:
        enqueue_embedding(stale)
        return SweepResult(enqueued=len(stale))
    if stale_entry_ids(model_id=embedder.model_id, limit=1):  # changed moments ago: their jobs are on the way
        return SweepResult()
    return SweepResult(pruned=prune_other_models(model_id=embedder.model_id))
