"""What every embedding model looks like to the knowledge base, and how a vector is stored."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

DTYPE = np.dtype("<f4")  # float32 little-endian: EntryEmbedding.vector's format


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # "local:use-m3", "openai:text-embedding-3-small": stored with every vector
    dims: int  # 0 for a remote model whose size is known only after its first answer

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32, shape (len(texts), dims), rows L2-normalised. Raises EmbeddingError."""
        ...


class EmbeddingError(Exception):
    """The model gave no vectors (cannot load, provider unreachable or refusing). `retryable`: later may help."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise EmbeddingError(f"expected a 2-D array of vectors, got shape {vectors.shape}", retryable=False)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=DTYPE).tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=DTYPE)
