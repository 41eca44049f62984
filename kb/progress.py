"""Live progress of background imports, in Redis under a tenant-scoped key.

Redis may be lost at any moment: the KnowledgeImport row stays the durable outcome and
readers fall back to it (kb.selectors.import_progress).
"""

from __future__ import annotations

import json

from tenants.keys import redis_key
from tenants.redis import redis_client

PROGRESS_TTL_SECONDS = 24 * 3600


def progress_key(job_id: str, *, schema: str | None = None) -> str:
    return redis_key("kb", "import", str(job_id), schema=schema)


def store_progress(job_id: str, *, phase: str, done: int, total: int) -> None:
    value = json.dumps({"phase": phase, "done": done, "total": total})
    redis_client().set(progress_key(job_id), value, ex=PROGRESS_TTL_SECONDS)


def read_progress(job_id: str) -> dict | None:
    return _read_json(progress_key(job_id))


def _read_json(key: str) -> dict | None:
    """The progress stored under `key`, or None when there is none (expired) or it is not JSON."""
    raw = redis_client().get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


# -- re-embedding every entry (kb.embeddings.sync.reembed_all): one run at a time per tenant --------


def embedding_progress_key(*, schema: str | None = None) -> str:
    return redis_key("kb", "embeddings", "progress", schema=schema)


def store_embedding_progress(*, phase: str, done: int, total: int, model_id: str, error: str = "") -> None:
    """phase: queued, embedding, succeeded or failed (with `error`, a key-free message)."""
    value = json.dumps({"phase": phase, "done": done, "total": total, "model_id": model_id, "error": error},
                       ensure_ascii=False)
    redis_client().set(embedding_progress_key(), value, ex=PROGRESS_TTL_SECONDS)


def read_embedding_progress() -> dict | None:
    return _read_json(embedding_progress_key())
