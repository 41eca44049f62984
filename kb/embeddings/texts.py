"""The texts embedded for an entry: "title" (question and tags) and "full" (question, tags and answer).

An entry is found by its best vector: a customer's question is most like an entry's question, but the
answer holds the words a paraphrase may use (measured in docs/BENCHMARKS.md, "best of both").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from kb.models import EntryEmbedding

KINDS = (EntryEmbedding.Kind.TITLE, EntryEmbedding.Kind.FULL)


def entry_texts(*, question: str, tags: Sequence[str], answer: str) -> dict[str, str]:
    """{kind: text} for one entry, in the form the benchmark measured ("question tag tag answer")."""
    title = " ".join([question, *tags]).strip()
    return {EntryEmbedding.Kind.TITLE: title, EntryEmbedding.Kind.FULL: f"{title} {answer}".strip()}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
