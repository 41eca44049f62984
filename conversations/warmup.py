"""A worker that answers loads what answering needs as it boots, not on its first customer's question.

The built-in embedding model takes 2-6 s and jieba's dictionary about a second to load (kb/embeddings/local.py,
kb/segmentation.py); loaded lazily, the first round of every new worker process waited for both, and new workers
start exactly when the load grows (autoscaling, docs/DEPLOYMENT.md). Loaded in a thread of its own, so the worker
takes jobs meanwhile (a round that needs them waits on their locks, as before). Workers that do not consume the
answering queue (delivery, media, webhooks pools) load nothing.
"""

from __future__ import annotations

import threading

import dramatiq
import structlog
from django.conf import settings

from conversations.jobs import ANSWER_BACKLOG

logger = structlog.get_logger("conversations.warmup")


class WarmUpAnswering(dramatiq.Middleware):
    def after_worker_boot(self, broker, worker):
        if not settings.WARM_UP_ANSWERING:
            return
        queues = worker.consumer_whitelist  # None: every queue
        if queues and ANSWER_BACKLOG.queue_name not in queues:
            return
        threading.Thread(target=warm_up, name="warm-up-answering", daemon=True).start()


def warm_up() -> None:
    # Imported here: Dramatiq loads its middleware before Django's app registry is ready.
    from kb.embeddings.providers import embeddings_enabled, local_embedder
    from kb.segmentation import tokenizer

    try:
        tokenizer()
        if embeddings_enabled():
            local_embedder().embed(["预热"])  # loads the model under its lock; a failure is remembered there
    except Exception as error:  # noqa: BLE001 - a failed warm-up leaves the lazy load to the first question
        logger.warning("conversations.warm_up_failed", error=repr(error))
