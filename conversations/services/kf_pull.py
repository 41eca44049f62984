"""微信客服 pulling: kf/sync_msg page by page, each page's messages and next cursor in one transaction.

The cursor row is locked (SELECT ... FOR UPDATE) for each page, so pullers of one
open_kfid run one at a time in any number of processes, and the lock lives in
PostgreSQL, which survives a Redis loss. A crash between pages resumes from the
last committed cursor; a page pulled twice stores nothing new (msgid is unique).
"""

from __future__ import annotations

import structlog
from django.db import transaction

from conversations.jobs import enqueue_kf_pull
from conversations.models import DeskSettings, InboundMessage, KfCursor, Message, WeComApp
from conversations.services.conversations import (
    TranscriptLine,
    contact_key,
    contacts_for,
    current_conversations,
    customer_text,
    record_messages,
)
from conversations.services.inbound import record_kf_message
from conversations.services.tracing import add_trace_event
from conversations.vocabulary import Stage
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComPermanentError

logger = structlog.get_logger("conversations.kf_pull")
MSGTOKEN_INVALID = 95007
# A runaway guard: 1000 pages of up to 1000 messages per call is far beyond any real backlog.
MAX_PAGES_PER_PULL = 1000
SERVICER_ORIGIN = 5  # sync_msg origin: a servicer wrote it in the WeCom client (docs/WECOM_PROTOCOL.md 4.2)


def pull_kf_messages(*, app: WeComApp, open_kfid: str, token: str = "", signal: InboundMessage | None = None) -> int:
    """Pull until has_more is 0 (not until a page is empty: WeCom sends empty pages with has_more=1).

    `signal` is the stored kf_msg_or_event callback that asked for this pull; each
    page is traced on it.
    """
    KfCursor.objects.get_or_create(app=app, open_kfid=open_kfid)
    client = WeComClient(app)
    stored = 0
    for _ in range(MAX_PAGES_PER_PULL):
        with transaction.atomic():
            cursor = KfCursor.objects.select_for_update().get(app=app, open_kfid=open_kfid)
            try:
                page = client.kf_sync_msg(open_kfid=open_kfid, cursor=cursor.cursor, token=token)
            except WeComPermanentError as exc:
                if exc.errcode != MSGTOKEN_INVALID or not token:
                    raise
                # The callback token lives 10 minutes; pulling without it is allowed (rate-limited).
                token = ""
                page = client.kf_sync_msg(open_kfid=open_kfid, cursor=cursor.cursor)
            new = [m for m in page.get("msg_list") or [] if isinstance(m, dict) and m.get("msgid")]
            recorded = [record_kf_message(app=app, message=message) for message in new]
            created = sum(r.created for r in recorded)
            stored += created
            _record_servicer_lines(app, [r.inbound for r in recorded if r.created])
            cursor.cursor = page.get("next_cursor") or cursor.cursor
            cursor.pulls += 1
            cursor.save(update_fields=["cursor", "pulls", "updated_at"])
        if signal is not None:
            add_trace_event(inbound=signal, stage=Stage.PULLED, open_kfid=open_kfid,
                            page_messages=len(new), stored=created, has_more=page.get("has_more", 0))
        if page.get("has_more") != 1:
            return stored
    logger.error("kf_pull.page_limit", app=app.pk, open_kfid=open_kfid)
    return stored


def _record_servicer_lines(app: WeComApp, stored: list[InboundMessage]) -> None:
    """WeCom servicers mode: what servicers wrote in the WeCom client (origin 5) joins the contact's
    current conversation, so the agent screens show the whole exchange. In the page's transaction;
    the conversations are locked in contact order, as the answering rounds lock them. The servicer's
    userid stays on the stored row (payload.servicer_userid), which the line points to."""
    servicers = [inbound for inbound in stored if inbound.origin == SERVICER_ORIGIN and inbound.sender]
    if not servicers or not app.answered_in_wecom_client:
        return
    contacts = contacts_for(servicers)
    ordered = sorted(contacts.values(), key=lambda contact: contact.pk)
    conversations = current_conversations(contacts=ordered, desk=DeskSettings.current())
    record_messages([TranscriptLine(conversation=conversations[contacts[contact_key(inbound)].pk],
                                    author=Message.Author.AGENT, text=customer_text(inbound), inbound=inbound)
                     for inbound in servicers])


def request_kf_pulls(cursors: list[KfCursor]) -> int:
    """The operator's "pull now" for 微信客服 accounts whose callbacks were lost: one pull job per
    account of an enabled app (pulls are serialised per account, so a duplicate pull is harmless)."""
    requested = 0
    for cursor in cursors:
        if cursor.app.is_enabled and cursor.app.kind == WeComApp.Kind.KF:
            enqueue_kf_pull(app_id=cursor.app_id, open_kfid=cursor.open_kfid)
            requested += 1
    return requested
