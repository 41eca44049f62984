"""Where a new knowledge entry came from, for the app that sent the operator to the add form.

A link to the admin's add form may carry `origin=<kind>:<id>` beside the initial values (an
unanswered question of the message path: `gap:12`); the form posts to the same address, so the
origin comes back with the saved entry. The app that owns the kind registers a receiver at start-up
(its AppConfig.ready), called inside the entry's transaction; kb never imports those apps
(docs/ARCHITECTURE.md, layers). An unknown kind or a malformed origin is ignored.
"""

from __future__ import annotations

from typing import Protocol

from kb.models import KnowledgeEntry

MAX_ORIGIN_LENGTH = 64


class OriginReceiver(Protocol):
    def __call__(self, *, object_id: int, entry: KnowledgeEntry) -> object: ...


_receivers: dict[str, OriginReceiver] = {}


def register_entry_origin(kind: str, receiver: OriginReceiver) -> None:
    _receivers[kind] = receiver


def entry_created(*, entry: KnowledgeEntry, origin: str) -> None:
    """Tell the origin's owner that `entry` was saved for it (inside the entry's transaction)."""
    kind, _sep, object_id = (origin or "")[:MAX_ORIGIN_LENGTH].partition(":")
    receiver = _receivers.get(kind)
    if receiver is not None and object_id.isascii() and object_id.isdigit():
        receiver(object_id=int(object_id), entry=entry)
