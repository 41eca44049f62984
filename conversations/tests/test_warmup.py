"""A worker that answers loads jieba and the built-in embedding model as it boots (conversations/warmup.py)."""

from __future__ import annotations

import threading

import dramatiq
import pytest

from conversations import warmup
from kb import segmentation
from kb.embeddings import local


@pytest.fixture
def cold(monkeypatch, settings):
    """This process as a fresh worker as deployed (the test settings turn the warm-up off): nothing loaded yet."""
    settings.WARM_UP_ANSWERING = True
    monkeypatch.setattr(segmentation, "_tokenizer", None)
    monkeypatch.setattr(local, "_local", local.LocalEmbedder())
    return local._local


def boot(queues):
    worker = dramatiq.Worker(dramatiq.get_broker(), queues=queues, worker_threads=1)
    warmup.WarmUpAnswering().after_worker_boot(dramatiq.get_broker(), worker)
    for thread in [t for t in threading.enumerate() if t.name == "warm-up-answering"]:
        thread.join(timeout=60)


def test_a_worker_of_the_answering_queue_loads_both_as_it_boots(cold):
    boot(queues={"inbound", "ai"})

    assert segmentation._tokenizer is not None
    assert cold.loaded


def test_a_worker_of_other_queues_loads_nothing(cold):
    boot(queues={"outbound", "media"})

    assert segmentation._tokenizer is None
    assert not cold.loaded
