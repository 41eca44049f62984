"""Satisfaction surveys (CSAT): the hook between the message path and the human side's surveys.

After a conversation humans handled is closed, the human side (tickets/csat.py) asks the customer one
question. The answer comes back as an ordinary customer message (a menu click "csat:<ticket>:<score>" on
微信客服, a number on the self-built app), so the answering round must ask the human side first whether it is
an answer; the message path never imports tickets (docs/ARCHITECTURE.md), so the human side registers a
receiver at start-up (tickets/apps.py), as for the handoff (handoff.py).

The hot path pays nothing for contacts without a pending survey: the human side marks a contact in Redis
(one key per contact, expiring with the survey's window) when it sends a survey, and the round reads the
markers of its contacts in one MGET; only a marked contact's message reaches the receiver. Redis lost: no
marker is read, the answer is an ordinary message (the survey is a nicety, never a reason to fail a round).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import redis

from conversations.models import Contact, InboundMessage
from conversations.services.menus import MenuClick
from tenants.keys import redis_key
from tenants.redis import redis_client

log = logging.getLogger(__name__)

SURVEY_ITEM_PREFIX = "csat:"


@dataclass(frozen=True, kw_only=True)
class SurveyAnswer:
    """What the human side did with a customer message that answered a survey."""

    ticket_id: int
    score: int
    label: str
    thanks: str = ""  # the tenant's thanks ("" sends nothing)


class SurveyReceiver(Protocol):
    def __call__(self, *, contact: Contact, inbound: InboundMessage, text: str,
                 click: MenuClick | None) -> SurveyAnswer | None: ...


_receiver: SurveyReceiver | None = None


def register_survey_receiver(receiver: SurveyReceiver) -> None:
    """Called once at start-up by the human side."""
    global _receiver
    _receiver = receiver


def _marker(contact_id: int) -> str:
    return redis_key("csat-pending", contact_id)


def mark_pending(*, contact_id: int, seconds: int) -> None:
    """A survey went to this contact: its next messages are offered to the receiver for `seconds`."""
    try:
        redis_client().set(_marker(contact_id), 1, ex=max(int(seconds), 1))
    except redis.RedisError:
        log.warning("csat marker not set for contact %s: Redis unavailable", contact_id)


def clear_pending(*, contact_id: int) -> None:
    try:
        redis_client().delete(_marker(contact_id))
    except redis.RedisError:
        log.warning("csat marker not cleared for contact %s: Redis unavailable", contact_id)


def pending_contacts(contact_ids: list[int]) -> set[int]:
    """The contacts (of these) with a survey waiting for an answer: one MGET, nothing without a receiver."""
    if _receiver is None or not contact_ids:
        return set()
    try:
        values = redis_client().mget([_marker(contact_id) for contact_id in contact_ids])
    except redis.RedisError:
        return set()
    return {contact_id for contact_id, value in zip(contact_ids, values, strict=True) if value is not None}


def answer_survey(*, contact: Contact, inbound: InboundMessage, text: str,
                  click: MenuClick | None) -> SurveyAnswer | None:
    """The survey answer this message gives, stored by the human side (inside the caller's transaction); None
    when it is not one (an ordinary message)."""
    if _receiver is None:
        return None
    return _receiver(contact=contact, inbound=inbound, text=text, click=click)
