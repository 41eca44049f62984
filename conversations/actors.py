"""Dramatiq actors of the inbound path: thin adapters that re-fetch rows and call services.

Redelivery of any message is harmless: processing a row that is no longer pending
does nothing, and pulling 微信客服 twice stores nothing twice.
"""

from __future__ import annotations

import dramatiq
from django.db import connection, transaction
from django.utils import timezone

from conversations.models import Contact, InboundMessage, WeComApp
from conversations.services.answering import answer_as_claimer, draft_suggestion
from conversations.services.inbound import KF_SIGNAL_EVENT
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.outbound import deliver_for_contact
from conversations.services.tracing import add_trace_event
from conversations.wecom.errors import WeComPermanentError, WeComTokenError


@dramatiq.actor(actor_name="conversations.process_inbound", queue_name="inbound", max_retries=10)
def process_inbound(inbound_id: int) -> None:
    """Hand a stored inbound message to the right stage; a kf signal triggers a pull."""
    # Most jobs find their message already answered by a round: one narrow read decides (raw: the ORM
    # spent more CPU compiling it than PostgreSQL running it, on the worker's hottest line).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event, msg_type FROM {InboundMessage._meta.db_table} "  # noqa: S608 - model table
                       "WHERE id = %s AND status = %s", [inbound_id, InboundMessage.Status.PENDING])
        found = cursor.fetchone()
    if found is None:
        return
    event, msg_type = found
    if msg_type != "event":
        answer_backlog()  # in this job: the tenant's oldest pending messages in rounds, most likely this one too
        return
    if event == KF_SIGNAL_EVENT:
        inbound = InboundMessage.objects.select_related("app").get(pk=inbound_id)
        # Without OpenKfId (older callback format) every account of the app is pulled.
        open_kfids = [inbound.open_kfid] if inbound.open_kfid else inbound.app.open_kfids
        try:
            for open_kfid in open_kfids:
                pull_kf_messages(app=inbound.app, open_kfid=open_kfid,
                                 token=inbound.payload.get("Token", ""), signal=inbound)
        except (WeComPermanentError, WeComTokenError) as exc:
            # Retrying cannot help (wrong secret, no permission): park it for the operator.
            _finish(inbound_id, InboundMessage.Status.FAILED, errcode=exc.errcode, reason=exc.errmsg[:200])
            return
        _finish(inbound_id, InboundMessage.Status.PROCESSED)
        return
    _finish(inbound_id, InboundMessage.Status.PROCESSED)  # subscribe, enter_agent, ...: recorded, nothing to answer


@dramatiq.actor(actor_name="conversations.answer_backlog", queue_name="inbound", max_retries=10)
def answer_backlog() -> None:
    """Answer the tenant's pending customer messages; come back for what a rate limit deferred."""
    delay = answer_as_claimer()
    if delay is not None:
        answer_backlog.send_with_options(delay=int(delay * 1000))


def _finish(inbound_id: int, status: str, **detail) -> None:
    with transaction.atomic():
        inbound = InboundMessage.objects.select_for_update().filter(pk=inbound_id).first()
        if inbound is None or inbound.status != InboundMessage.Status.PENDING:
            return
        inbound.status = status
        inbound.processed_at = timezone.now()
        inbound.save(update_fields=["status", "processed_at"])
        add_trace_event(inbound=inbound, stage=status, **detail)


@dramatiq.actor(actor_name="conversations.deliver_outbound", queue_name="outbound", max_retries=20)
def deliver_outbound(contact_id: int) -> None:
    """Deliver the contact's waiting ledger rows in order; come back when one has to wait."""
    if not Contact.objects.filter(pk=contact_id).exists():
        return
    delay = deliver_for_contact(contact_id)
    if delay is not None:
        deliver_outbound.send_with_options(args=(contact_id,), delay=int(delay * 1000))


@dramatiq.actor(actor_name="conversations.suggest_reply", queue_name="ai", max_retries=0)
def suggest_reply(inbound_id: int) -> None:
    """Draft the AI's suggested reply for the human who owns the conversation."""
    inbound = InboundMessage.objects.filter(pk=inbound_id).first()
    if inbound is not None:
        draft_suggestion(inbound)


@dramatiq.actor(actor_name="conversations.pull_kf", queue_name="kf_sync", max_retries=10)
def pull_kf(app_id: int, open_kfid: str) -> None:
    """Pull one 微信客服 account on demand (admin action, or recovery without a callback token)."""
    app = WeComApp.objects.filter(pk=app_id, kind=WeComApp.Kind.KF, is_enabled=True).first()
    if app is not None:
        pull_kf_messages(app=app, open_kfid=open_kfid)
