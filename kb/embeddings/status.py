"""Reads for the admin: how many entries have the current model's vectors, and the re-embed's progress."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from redis.exceptions import RedisError

from kb.embeddings.providers import current_embedder
from kb.embeddings.texts import KINDS
from kb.models import EntryEmbedding, KnowledgeEntry
from kb.progress import read_embedding_progress


@dataclass(frozen=True)
class EmbeddingStatus:
    model_id: str | None  # None: embeddings are off
    total: int  # entries
    embedded: int  # entries with every kind of vector under model_id
    progress: dict | None  # the last re-embed's {"phase", "done", "total", "model_id", "error"}, when Redis has it

    @property
    def complete(self) -> bool:
        return self.embedded >= self.total


def embedding_status() -> EmbeddingStatus:
    embedder = current_embedder()
    total = KnowledgeEntry.objects.count()
    if embedder is None:
        return EmbeddingStatus(model_id=None, total=total, embedded=0, progress=None)
    kinds = Count("embeddings", filter=Q(embeddings__model_id=embedder.model_id))
    embedded = KnowledgeEntry.objects.annotate(kinds=kinds).filter(kinds__gte=len(KINDS)).count()
    try:
        progress = read_embedding_progress()
    except RedisError:
        progress = None
    return EmbeddingStatus(model_id=embedder.model_id, total=total, embedded=embedded, progress=progress)


def entry_models(entry_ids: list[int]) -> dict[int, list[str]]:
    """{entry id: the models it has a full set of vectors under}, for the admin's list."""
    rows = (EntryEmbedding.objects.filter(entry_id__in=entry_ids).values("entry_id", "model_id")
            .annotate(kinds=Count("pk")).filter(kinds__gte=len(KINDS)).order_by("model_id"))
    models: dict[int, list[str]] = {}
    for row in rows:
        models.setdefault(row["entry_id"], []).append(row["model_id"])
    return models
