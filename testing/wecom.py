"""Talking to our WeCom endpoints the way WeCom does (signed callbacks, or a customer message stored as
the callback view stores it), and cleaning up after tests that commit.

The callback sender (wecom_sandbox.callbacks) signs and encrypts with the official test
credentials (testing.vectors), which every factory-made app uses.
"""

from __future__ import annotations

import itertools
from urllib.parse import urlsplit

from django_tenants.utils import schema_context

from conversations.models import (
    Contact,
    Conversation,
    InboundMessage,
    KfCursor,
    Message,
    OutboundMessage,
    TraceEvent,
    WeComApp,
)
from conversations.services.inbound import record_callback_message
from testing.vectors import AES_KEY, TOKEN
from tickets.models import Ticket
from wecom_sandbox.callbacks import CallbackSender

# MsgIds of customer_says(): 64-bit like WeCom's, far from the official vectors' and the factories'.
_msg_ids = itertools.count(2 * 10**15)


def callback_path(app: WeComApp, schema: str) -> str:
    return f"/t/{schema}/wecom/callback/{app.callback_id}/"


def sender_for(app: WeComApp, url: str, **kwargs) -> CallbackSender:
    """WeCom's side of `app`'s callback URL: signs, encrypts and (re)delivers callbacks to `url`."""
    return CallbackSender(url=url, token=TOKEN, encoding_aes_key=AES_KEY, receive_id=app.corp_id,
                          agent_id=app.agent_id, **kwargs)


def relative(url: str) -> str:
    """Path and query of `url`, for Django's test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def purge_app(schema: str, app: WeComApp) -> None:
    """Delete a committed app and everything that hangs off it (for tests that commit)."""
    with schema_context(schema):
        outbound = OutboundMessage.objects.filter(contact__app=app)
        # Delivery events of sends that answer no inbound message (agents' replies) are under their own trace id.
        TraceEvent.objects.filter(inbound=None, trace_id__in=outbound.values("trace_id")).delete()
        outbound.delete()
        Ticket.objects.filter(conversation__contact__app=app).delete()
        Message.objects.filter(conversation__contact__app=app).delete()
        Conversation.objects.filter(contact__app=app).delete()
        Contact.objects.filter(app=app).delete()
        TraceEvent.objects.filter(inbound__app=app).delete()
        InboundMessage.objects.filter(app=app).delete()
        KfCursor.objects.filter(app=app).delete()
        WeComApp.objects.filter(pk=app.pk).delete()


def customer_says(app: WeComApp, text: str, *, user: str = "zhangsan") -> InboundMessage:
    """Store a text message from `user` as the callback view does (enqueued on commit); returns its row.

    Each call is a new message (a fresh MsgId). Call it inside the app's schema_context.
    """
    Contact.objects.get_or_create(app=app, external_id=user, open_kfid="")
    fields = {"ToUserName": app.corp_id, "FromUserName": user, "CreateTime": "1700000000", "MsgType": "text",
              "Content": text, "MsgId": str(next(_msg_ids)), "AgentID": str(app.agent_id)}
    return record_callback_message(app=app, fields=fields).inbound
