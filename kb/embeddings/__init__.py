"""Embeddings of knowledge entries: the interface the rest of the desk codes against.

- `Embedder`: turns texts into L2-normalised float32 vectors under one `model_id`.
- `current_embedder()`: the current tenant's embedder: the model its AI provider names (through the
  resolver conversations registers at start-up, kb/embeddings/providers.py), else the built-in local
  model (kb/embeddings/local.py); None when embeddings are off (KB_EMBEDDINGS=off) or the model cannot load.
- `embed_query(text)`: (model_id, vector) for a customer question, or None: callers fall back to lexical.
- `embeddings_version()`: per tenant, changes whenever any entry's vectors change (kb/embeddings/version.py).

Vectors are written by the embed jobs (kb/embeddings/sync.py, run by kb/actors.py).
"""

from kb.embeddings.base import Embedder, EmbeddingError, from_bytes, to_bytes
from kb.embeddings.providers import (
    EmbedderResolver,
    current_embedder,
    embed_query,
    register_embedder_resolver,
)
from kb.embeddings.version import embeddings_version

__all__ = [
    "Embedder",
    "EmbedderResolver",
    "EmbeddingError",
    "current_embedder",
    "embed_query",
    "embeddings_version",
    "from_bytes",
    "register_embedder_resolver",
    "to_bytes",
]
