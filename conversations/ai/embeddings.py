"""The tenant's OpenAI-compatible embeddings (POST {base_url}/embeddings), offered to the knowledge base.

kb sits below conversations and cannot read the AI provider, so conversations registers
`tenant_embedder` as kb's embedder resolver at start-up (conversations/apps.py). A provider whose
`embedding_model` is blank leaves the knowledge base on its built-in local model.

Requests go through llm.py's pooled client and deadline, and through the tenant's circuit breaker (breaker.py,
the one the chat model uses: it is the same provider): while it is open a question is ranked lexically at once
instead of waiting for a timeout, and an embedding job fails fast and is retried later. A request the
provider calls bad (400, 413, 422: a wrong embedding model name, an input too long) counts as the provider
working, as for chat. Neither errors nor log lines carry the key.
"""

from __future__ import annotations

import json
import time

import numpy as np
import structlog
from django.db import connection

from conversations.ai.breaker import BreakerOpen, call_with_breaker
from conversations.ai.llm import LLMError, _error_excerpt, _post
from conversations.ai.models import AIProvider
from conversations.ai.selectors import get_ai_provider
from kb.embeddings import Embedder, EmbeddingError
from kb.embeddings.base import normalised
from kb.embeddings.sync import request_reembed

logger = structlog.get_logger("conversations.ai")

BATCH_TEXTS = 64  # texts per request: OpenAI takes up to 2048, but one slow call should not carry a whole import
MAX_TEXT_CHARS = 2000  # well inside 8k-token input limits, even at one token per Han character
# A customer waits for the question's vector: a provider that is slow to embed must not hold the answer
# for the chat timeout too; retrieval falls back to lexical instead.
QUERY_TIMEOUT_SECONDS = 5.0


class EmbeddingRefused(EmbeddingError):
    """The provider answered the embeddings request with an HTTP error (`status_code`)."""

    def __init__(self, message: str, *, retryable: bool, status_code: int):
        super().__init__(message, retryable=retryable)
        self.status_code = status_code


class OpenAIEmbedder:
    """Embeds with the tenant's provider; model_id "openai:<model>". dims is known after the first answer."""

    def __init__(self, *, provider: AIProvider, model: str):
        self.url = provider.base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.model_id = f"openai:{model}"
        self.dims = 0
        self._provider = provider
        self._api_key = provider.api_key
        self._timeout = float(provider.timeout_seconds)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        timeout = min(self._timeout, QUERY_TIMEOUT_SECONDS) if len(texts) == 1 else self._timeout
        try:
            parts = [call_with_breaker(self._provider, self._call, list(texts[start:start + BATCH_TEXTS]), timeout)
                     for start in range(0, len(texts), BATCH_TEXTS)]
        except BreakerOpen as exc:
            raise EmbeddingError(f"{self.model_id}: not called, {exc}", retryable=True) from None
        vectors = normalised(np.concatenate(parts))
        self.dims = vectors.shape[1]
        return vectors

    def _call(self, texts: list[str], timeout: float) -> np.ndarray:
        payload = {"model": self.model, "input": [(text or " ")[:MAX_TEXT_CHARS] for text in texts],
                   "encoding_format": "float"}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        started = time.monotonic()
        try:
            status, body = _post(self.url, payload, headers, timeout)
        except LLMError as exc:
            raise self._failed(str(exc), retryable=exc.retryable, started=started) from None
        if not 200 <= status < 300:
            retryable = status == 429 or status >= 500
            raise self._failed(f"HTTP {status}: {_error_excerpt(body, self._api_key)}", retryable=retryable,
                               started=started, status_code=status)
        try:
            data = sorted(json.loads(body)["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise self._failed(f"HTTP {status} without embeddings: {type(exc).__name__}", retryable=True,
                               started=started) from None
        if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0:
            raise self._failed(f"{vectors.shape} vectors for {len(texts)} texts", retryable=True, started=started)
        return vectors

    def _failed(self, message: str, *, retryable: bool, started: float, status_code: int | None = None):
        logger.warning("ai.embeddings.failed", tenant=connection.schema_name, model=self.model, url=self.url,
                       status_code=status_code, detail=message, latency_ms=int((time.monotonic() - started) * 1000))
        if status_code is not None:
            return EmbeddingRefused(f"{self.model_id}: {message}", retryable=retryable, status_code=status_code)
        return EmbeddingError(f"{self.model_id}: {message}", retryable=retryable)


def embedder_for(provider: AIProvider | None) -> Embedder | None:
    """The provider's embedder, or None when it names no embedding model (the local model answers)."""
    if provider is None or not provider.embedding_model.strip():
        return None
    return OpenAIEmbedder(provider=provider, model=provider.embedding_model.strip())


def tenant_embedder() -> Embedder | None:
    """kb's resolver: the current tenant's provider's embedder (enabled or not: `enabled` governs the chat
    model, while knowledge keeps answering), or None."""
    return embedder_for(get_ai_provider())


def embedding_model_changed(*, before: str | None, after: str | None) -> bool:
    """Call after saving or deleting the provider: a different embedding model re-embeds every entry
    in the background (blank and no provider both mean the local model)."""
    if (before or "").strip() == (after or "").strip():
        return False
    request_reembed()
    return True
