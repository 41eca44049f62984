"""Reads of the message path shared with the screens: a transcript line with its delivery state."""

from __future__ import annotations

from collections.abc import Iterable

from conversations.models import Message, OutboundMessage

Status = OutboundMessage.Status
# A message sent in several parts shows the least advanced part's state.
_LEAST_ADVANCED_FIRST = (Status.DEAD, Status.CANCELLED, Status.RETRYING, Status.SENDING, Status.PENDING)


def message_deliveries(message_ids: Iterable[int]) -> dict[int, list[str]]:
    """{message id: the statuses of its ledger rows, by part} for many messages in one query."""
    deliveries: dict[int, list[str]] = {}
    for message_id, status in (OutboundMessage.objects.filter(message_id__in=list(message_ids)).order_by("part")
                               .values_list("message_id", "status")):
        deliveries.setdefault(message_id, []).append(status)
    return deliveries


def serialize_message(message: Message, deliveries: dict[int, list[str]] | None = None) -> dict:
    """A transcript line as the screens show it. `deliveries` given (even empty): the caller already
    loaded every part (message_deliveries); otherwise this message's parts are read."""
    if deliveries is None:
        deliveries = message_deliveries([message.pk])
    statuses = deliveries.get(message.pk, [])
    return {"id": message.pk, "author": message.author, "author_label": message.get_author_display(),
            "text": message.text, "created_at": message.created_at.isoformat(),
            "delivery": delivery_summary(statuses)}


def delivery_summary(statuses: list[str]) -> str | None:
    """One word for a message's parts: the least advanced part wins; None when nothing is sent."""
    if not statuses:
        return None
    return next((status.value for status in _LEAST_ADVANCED_FIRST if status in statuses), Status.SENT.value)
