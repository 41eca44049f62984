"""Dramatiq actors of the message path: thin adapters that re-fetch rows and call services.

Their jobs are enqueued by conversations/jobs.py only. Redelivery of any job is harmless:
processing a row that is no longer pending does nothing, a round answers only what is still
pending under its contact locks, delivery goes through the ledger, and pulling 微信客服 twice
stores nothing twice.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from conversations.jobs import (
    ANSWER_BACKLOG,
    COLLECT_KNOWLEDGE_GAPS,
    DELIVER_OUTBOUND,
    DELIVER_WEBHOOK,
    INDEX_MESSAGES,
    KF_HANDOFF_DELIVERED,
    MEDIA_DOWNLOAD,
    PROCESS_INBOUND,
    PULL_KF,
    REFRESH_PROFILES,
    SUGGEST_REPLY,
    enqueue_backlog,
    enqueue_delivery,
)
from conversations.models import Contact, InboundMessage, WeComApp
from conversations.search.indexing import index_messages as index_messages_now
from conversations.services.answering import answer_as_claimer, draft_suggestion
from conversations.services.handoff import handoff_delivered
from conversations.services.inbound import KF_AUTH_CHANGE_EVENT, KF_PROCESSED_EVENTS, KF_SIGNAL_EVENT
from conversations.services.kf_events import handle_kf_event
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.knowledge_gaps import collect_knowledge_gaps as collect_gaps
from conversations.services.media import store_inbound_media
from conversations.services.outbound import deliver_for_contact
from conversations.services.profiles import refresh_profiles as refresh_profiles_now
from conversations.services.tracing import add_trace_event
from conversations.services.webhooks import deliver_webhook as deliver_webhook_now
from conversations.vocabulary import Stage
from conversations.wecom.errors import WeComPermanentError, WeComTokenError

Status = InboundMessage.Status


@PROCESS_INBOUND.actor(max_retries=10)
def process_inbound(inbound_id: int) -> None:
    """A stored event: a 微信客服 signal pulls its account, enter_session and the like are acted on, any
    other event is recorded. Customer messages ask for answer_backlog instead (conversations/jobs.py); one
    that still comes here (a job queued before an upgrade to coalesced jobs) answers the backlog too."""
    # Most jobs find their message already answered by a round: one narrow read decides (raw: the ORM
    # spent more CPU compiling it than PostgreSQL running it, on the worker's hottest line).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event, msg_type FROM {InboundMessage._meta.db_table} "  # noqa: S608 - model table
                       "WHERE id = %s AND status = %s", [inbound_id, Status.PENDING])
        found = cursor.fetchone()
    if found is None:
        return
    event, msg_type = found
    if msg_type != "event":
        answer_backlog()
    elif event == KF_SIGNAL_EVENT:
        _pull_for_signal(inbound_id)
    elif event in KF_PROCESSED_EVENTS or event == KF_AUTH_CHANGE_EVENT:  # enter_session, auth change
        handle_kf_event(inbound_id=inbound_id)
    else:  # subscribe, enter_agent, ...: recorded, nothing to answer
        _close_event(inbound_id, Status.PROCESSED)


@ANSWER_BACKLOG.actor(max_retries=10)
def answer_backlog() -> None:
    """Answer the tenant's pending customer messages; come back for what a rate limit deferred."""
    delay = answer_as_claimer()
    if delay is not None:
        enqueue_backlog(delay_seconds=delay)


@DELIVER_OUTBOUND.actor(max_retries=20)
def deliver_outbound(contact_id: int) -> None:
    """Deliver the contact's waiting ledger rows in order; come back when one has to wait."""
    if not Contact.objects.filter(pk=contact_id).exists():
        return
    delay = deliver_for_contact(contact_id)
    if delay is not None:
        enqueue_delivery(contact_id, delay_seconds=delay)


@KF_HANDOFF_DELIVERED.actor(max_retries=10)
def kf_handoff_delivered(conversation_id: int) -> None:
    """WeCom servicers mode: the handoff message is out; move the session to WeCom's servicers."""
    handoff_delivered(conversation_id=conversation_id)


@SUGGEST_REPLY.actor(max_retries=0)
def suggest_reply(inbound_id: int) -> None:
    """Draft the AI's suggested reply for the human who owns the conversation."""
    inbound = InboundMessage.objects.filter(pk=inbound_id).first()
    if inbound is not None:
        draft_suggestion(inbound)


@PULL_KF.actor(max_retries=10)
def pull_kf(app_id: int, open_kfid: str) -> None:
    """Pull one 微信客服 account on demand (the operator's action when callbacks were lost)."""
    app = WeComApp.objects.filter(pk=app_id, kind=WeComApp.Kind.KF, is_enabled=True).first()
    if app is not None:
        pull_kf_messages(app=app, open_kfid=open_kfid)


@MEDIA_DOWNLOAD.actor(max_retries=10)
def download_media(inbound_id: int) -> None:
    """Store a customer's picture, voice, video or file; a stored or refused one is not fetched again."""
    store_inbound_media(inbound_id=inbound_id)


@REFRESH_PROFILES.actor(max_retries=3)
def refresh_profiles(contact_ids: list[int]) -> None:
    """Fetch the contacts' WeCom profiles; WeCom refusing or down is recorded on the contacts (they are tried
    again after a while), so this never retries on its own, and a redelivery finds them fresh."""
    refresh_profiles_now(contact_ids=[int(contact_id) for contact_id in contact_ids])


@COLLECT_KNOWLEDGE_GAPS.actor(max_retries=3)
def collect_knowledge_gaps() -> None:
    """Group new unanswered questions; a redelivery finds them grouped already (one group per message)."""
    collect_gaps()


@INDEX_MESSAGES.actor(max_retries=3)
def index_messages() -> None:
    """Index the settled messages after the watermark; a redelivery (or a second job at once) finds them indexed
    or the first one's lock, and writes nothing twice."""
    index_messages_now()


@DELIVER_WEBHOOK.actor(max_retries=3)
def deliver_webhook(delivery_id: int) -> None:
    """POST one event to one endpoint; its retries are scheduled by the service, so a redelivered job finds
    the row delivered, not yet due, or locked by the first, and POSTs nothing."""
    deliver_webhook_now(delivery_id=delivery_id)


def _pull_for_signal(inbound_id: int) -> None:
    """A kf_msg_or_event callback: pull what it announces with its token, then close the signal."""
    inbound = InboundMessage.objects.select_related("app").get(pk=inbound_id)
    # Without OpenKfId (older callback format) every account of the app is pulled.
    open_kfids = [inbound.open_kfid] if inbound.open_kfid else inbound.app.open_kfids
    try:
        for open_kfid in open_kfids:
            pull_kf_messages(app=inbound.app, open_kfid=open_kfid, token=inbound.payload.get("Token", ""),
                             signal=inbound)
    except (WeComPermanentError, WeComTokenError) as exc:
        # Retrying cannot help (wrong secret, no permission): park it for the operator.
        _close_event(inbound_id, Status.FAILED, errcode=exc.errcode, reason=exc.errmsg[:200])
        return
    _close_event(inbound_id, Status.PROCESSED)


def _close_event(inbound_id: int, status: InboundMessage.Status, **detail) -> None:
    """Mark a still-pending event row processed or failed, with its trace event (once, under its lock)."""
    with transaction.atomic():
        inbound = InboundMessage.objects.select_for_update().filter(pk=inbound_id).first()
        if inbound is None or inbound.status != Status.PENDING:
            return
        inbound.status = status
        inbound.processed_at = timezone.now()
        inbound.save(update_fields=["status", "processed_at"])
        add_trace_event(inbound=inbound, stage=Stage.FAILED if status == Status.FAILED else Stage.PROCESSED,
                        **detail)
