"""Which embedder the current tenant uses, and embedding a customer's question.

kb cannot read the tenant's AI provider (conversations sits above kb), so conversations registers a
resolver at start-up (conversations/apps.py), as it registers the handoff receiver: the resolver returns
the tenant's OpenAI-compatible embedder when its provider names an embedding model, else None, and then
the built-in local model answers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import structlog
from django.conf import settings
from django.db import connection

from kb.embeddings.base import Embedder, EmbeddingError
from kb.embeddings.local import local_embedder

logger = structlog.get_logger("kb.embeddings")

EmbedderResolver = Callable[[], Embedder | None]
_resolver: EmbedderResolver | None = None


def register_embedder_resolver(resolver: EmbedderResolver | None) -> None:
    """Set (or, with None, remove) the hook that names the current tenant's remote embedder."""
    global _resolver
    _resolver = resolver


def embeddings_enabled() -> bool:
    return str(getattr(settings, "KB_EMBEDDINGS", "on")).strip().lower() not in ("off", "0", "false", "no")


def current_embedder() -> Embedder | None:
    """The current tenant's embedder (see the module docstring); None when embeddings are off or the local
    model failed to load in this process. Never loads a model itself."""
    if not embeddings_enabled():
        return None
    if _resolver is not None:
        remote = _resolver()
        if remote is not None:
            return remote
    local = local_embedder()
    return local if local.available else None


def embed_query(text: str) -> tuple[str, np.ndarray] | None:
    """(model_id, unit vector) of a customer's question, or None: no embedder, or it failed (logged).

    Never raises for a model's failure: answering falls back to lexical search.
    """
    embedder = current_embedder()
    if embedder is None or not (text or "").strip():
        return None
    try:
        vectors = embedder.embed([text])
    except EmbeddingError as exc:
        logger.warning("kb.embeddings.query_failed", tenant=connection.schema_name, model=embedder.model_id,
                       error=str(exc))
        return None
    return embedder.model_id, vectors[0]
