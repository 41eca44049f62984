"""What WeCom will still accept from us for one customer, so agents see it and a reply WeCom would
refuse is refused up front (with the reason) instead of dying in the ledger.

- 微信客服 (docs/WECOM_PROTOCOL.md 4.2, send_msg): only within 48 hours after the customer's last
  message (95002), and at most 5 messages per customer message, each part of a long reply counting
  (95001); a new customer message restores both. Event messages (welcome, closing) go out with their
  own codes and do not count.
- Self-built app (message/send): WeCom silently drops the 31st message a minute to one member. The
  ledger paces instead of refusing, so the screen only shows how many fit in the current minute.

Callers: `reply_allowance(contact=..., parts=n)`; `refusal` is None when the reply may go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from conversations.models import Contact, InboundMessage, OutboundMessage, WeComApp

KF_REPLY_WINDOW = timedelta(hours=48)
KF_REPLIES_PER_CUSTOMER_MESSAGE = 5
APP_MESSAGES_PER_MINUTE = 30
CUSTOMER_ORIGIN = 3  # kf: sent by the WeChat customer
# Rows that never reached WeCom as a send, or that WeCom refused: they used none of the allowance.
_NOT_SENT = (OutboundMessage.Status.CANCELLED, OutboundMessage.Status.DEAD)


class Refusal(models.TextChoices):
    NO_CUSTOMER_MESSAGE = "no_customer_message", "the customer has not written yet"
    WINDOW_CLOSED = "window_closed", "more than 48 hours since the customer's last message"
    NO_REPLIES_LEFT = "no_replies_left", "the 5 replies to the customer's last message are used up"


@dataclass(frozen=True, kw_only=True)
class ReplyAllowance:
    window_ends_at: datetime | None = None  # 微信客服
    replies_left: int | None = None  # 微信客服: of the 5 per customer message
    per_minute_left: int | None = None  # self-built app: before WeCom would drop messages
    refusal: Refusal | None = None

    def as_dict(self) -> dict:
        return {"window_ends_at": self.window_ends_at.isoformat() if self.window_ends_at else None,
                "replies_left": self.replies_left, "per_minute_left": self.per_minute_left,
                "refusal": self.refusal.value if self.refusal else None}


def reply_allowance(*, contact: Contact, parts: int = 1, now: datetime | None = None) -> ReplyAllowance:
    """What WeCom would accept now from us for this contact, and whether `parts` more messages fit."""
    now = now or timezone.now()
    if contact.app.kind == WeComApp.Kind.APP:
        recent = OutboundMessage.objects.filter(contact=contact, status=OutboundMessage.Status.SENT,
                                                sent_at__gt=now - timedelta(minutes=1)).count()
        return ReplyAllowance(per_minute_left=max(APP_MESSAGES_PER_MINUTE - recent, 0))
    last = (InboundMessage.objects.filter(app_id=contact.app_id, sender=contact.external_id,
                                          open_kfid=contact.open_kfid, origin=CUSTOMER_ORIGIN)
            .order_by("-id").values_list("sent_at", "received_at").first())
    if last is None:
        return ReplyAllowance(replies_left=0, refusal=Refusal.NO_CUSTOMER_MESSAGE)
    wrote_at = last[0] or last[1]
    used = (OutboundMessage.objects.filter(contact=contact, created_at__gte=wrote_at, event_code="")
            .exclude(status__in=_NOT_SENT).count())
    allowance = {"window_ends_at": wrote_at + KF_REPLY_WINDOW,
                 "replies_left": max(KF_REPLIES_PER_CUSTOMER_MESSAGE - used, 0)}
    if now > allowance["window_ends_at"]:
        return ReplyAllowance(**allowance, refusal=Refusal.WINDOW_CLOSED)
    if parts > allowance["replies_left"]:
        return ReplyAllowance(**allowance, refusal=Refusal.NO_REPLIES_LEFT)
    return ReplyAllowance(**allowance)
