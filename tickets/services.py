"""What agents and supervisors do: claim, reply, hand back, resolve, close, reassign, notes, knowledge.

Every write locks the conversation row first (then the ticket), in that order, so two
agents racing for the same conversation serialise: the first claim wins, the second is
told who has it. Ticket status changes go through `change_ticket_status`, which refuses
illegal steps; every step lands in the ticket's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from conversations.models import Conversation, DeskSettings, Message, WeComApp
from conversations.realtime import conversation_changed
from conversations.services import sensitive_words
from conversations.services.conversations import change_state, record_message
from conversations.services.handoff import HandoffReceipt, KfSessionChange, KfSessionEvent
from conversations.services.media import AttachmentProblem, attachment_msgtype
from conversations.services.outbound import queue_outbound, queue_outbound_media, split_text
from conversations.services.reply_limits import Refusal, reply_allowance
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComError
from kb.services import EntryInvalid, create_entry
from tickets import csat, presence, realtime
from tickets.business_hours_models import BusinessHours
from tickets.business_hours_services import current_schedule, due_after
from tickets.jobs import enqueue_end_kf_session
from tickets.knowledge_proposals import propose_knowledge
from tickets.models import AgentProfile, Ticket, TicketEvent, TicketSettings
from tickets.selectors import ACTIVE_TICKET, delivered_first_responses, open_load
from tickets.teams.assignment import candidates_for, mark_offered, next_agent
from tickets.teams.models import Team
from tickets.teams.position import handoff_notice, in_queue_order
from tickets.teams.routing import route_conversation
from tickets.webhooks import emit_ticket_event

Status = Ticket.Status
# 微信客服 service_state "ended" (docs/KF_SESSIONS.md): the only transition our agents need.
KF_SESSION_ENDED = 4
# WeCom servicers mode: WeCom's pool, or one servicer in the WeCom client.
KF_SESSION_POOL = 2
KF_SESSION_SERVICER = 3
# What an agent (or the API) may set directly; closing goes through close_conversation (the goodbye).
SETTABLE_STATUSES = (Status.ASSIGNED, Status.PENDING_CUSTOMER, Status.RESOLVED)
NOTE_MAX_LENGTH = 2000
TICKET_TRANSITIONS: dict[str, set[str]] = {
    Status.OPEN: {Status.ASSIGNED, Status.RESOLVED, Status.CLOSED},
    Status.ASSIGNED: {Status.OPEN, Status.PENDING_CUSTOMER, Status.RESOLVED, Status.CLOSED},
    Status.PENDING_CUSTOMER: {Status.ASSIGNED, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.ASSIGNED, Status.CLOSED},
    Status.CLOSED: set(),
}


class ActionRefused(ValueError):
    """The action is not possible now; the message says why (shown to the agent). `code` says it to programs
    (the REST API's 409 body: docs/API.md, "Tickets and agents")."""

    def __init__(self, message: str, *, code: str = "conflict"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class Integration:
    """Someone acting through the REST API: one of the tenant's keys, or a staff user signed in to it. Not an
    agent: it owns no conversation and answers no customer, but may act on any conversation of the tenant
    as a supervisor may. The timeline names it (`by`: "api-key:<name>" or "user:<username>"); its actor
    is the staff user, or nobody for a key (a key is not a user)."""

    label: str
    user: object | None = None


# Who does an action: an agent or supervisor on the screens, or an integration through the API.
Actor = AgentProfile | Integration


# --- handoff side (the message path's hook, registered in tickets/apps.py) ---------------------------

def receive_handoff(*, conversation: Conversation, reason: str, subject: str,
                    now: datetime | None = None) -> HandoffReceipt:
    """Inside the handoff transaction, with the conversation locked: open (or reuse) the ticket, queue it for
    its team (tickets/teams/routing.py) and offer it to the team's next agent (round-robin); when nobody can
    be offered it, the customer is told once that we will answer soon, and their place in the queue.
    Outside business hours nobody is offered it (the sweep does at the opening) and the customer is told
    the off-hours message instead; the SLAs count business time only (docs/AGENTS.md, "Business hours")."""
    now = now or timezone.now()
    schedule = current_schedule()
    ticket = Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_TICKET).first()
    if ticket is None:
        policy = TicketSettings.current()
        route = route_conversation(conversation=conversation)
        ticket = Ticket.objects.create(
            conversation=conversation, reason=reason, subject=subject[:200], team=route.team,
            first_response_due_at=due_after(schedule, now, policy.first_response_minutes),
            resolution_due_at=due_after(schedule, now, policy.resolution_minutes))
        _event(ticket, None, "opened", reason=reason)
        if route.team is not None:
            _event(ticket, None, "routed", **route.as_detail())
    if not schedule.is_open(now):
        opens = schedule.next_opening(now)
        if not ticket.events.filter(kind="off_hours").exists():
            _event(ticket, None, "off_hours",  # the opening in the tenant's zone, as the operator reads it
                   opens_at=opens.astimezone(schedule.zone).isoformat() if opens else None)
        realtime.queue_changed(conversation=conversation.pk, change="waiting")
        return HandoffReceipt(ticket_id=ticket.pk, offered=False, waiting_notice=_waiting_notice(
            conversation, BusinessHours.current().off_hours_message))
    offered = offer_ticket(ticket=ticket)
    realtime.queue_changed(conversation=conversation.pk, change="waiting")
    if offered:
        return HandoffReceipt(ticket_id=ticket.pk, offered=True)
    # The place joins the handoff message: one message per customer message, no extra reply spent.
    notice = "\n".join(filter(None, [_waiting_notice(conversation), handoff_notice(ticket=ticket)]))
    return HandoffReceipt(ticket_id=ticket.pk, offered=False, waiting_notice=notice)


def _waiting_notice(conversation: Conversation, text: str | None = None) -> str:
    """The "we will answer soon" text (or `text`), once per wait ("" if already sent)."""
    if conversation.waiting_notice_sent:
        return ""
    conversation.waiting_notice_sent = True
    conversation.save(update_fields=["waiting_notice_sent"])
    return TicketSettings.current().waiting_message if text is None else text


def offer_ticket(*, ticket: Ticket) -> bool:
    """Offer to the next agent of the ticket's team in the round-robin (online, under their capacity;
    tickets/teams/assignment.py); False if nobody, the ticket then waits for the sweep. Inside a transaction."""
    chosen = next_agent(team=ticket.team)
    if chosen is not None:
        ticket.offered_to_id = chosen.user_id
        ticket.save(update_fields=["offered_to", "updated_at"])
        _event(ticket, None, "offered", to=chosen.name)
        realtime.queue_changed(conversation=ticket.conversation_id, change="offered")
        realtime.offer_to_agent(user_id=chosen.user_id, conversation_id=ticket.conversation_id, ticket_id=ticket.pk)
        return True
    if not ticket.events.filter(kind="nobody_online").exists():
        _event(ticket, None, "nobody_online", **({"team": ticket.team.name} if ticket.team_id else {}))
    return False


def record_delivered_first_responses() -> int:
    """SLA: a ticket's first response is the first agent reply that reached the customer; record
    when it did (a reply refused by WeCom, or still waiting, is not a response)."""
    waiting = Ticket.objects.filter(status__in=ACTIVE_TICKET, first_responded_at__isnull=True)
    delivered = delivered_first_responses(waiting)
    for ticket_id, sent_at in delivered.items():
        with transaction.atomic():
            if Ticket.objects.filter(pk=ticket_id, first_responded_at__isnull=True).update(
                    first_responded_at=sent_at):
                _event(Ticket.objects.get(pk=ticket_id), None, "first_response_delivered")
    return len(delivered)


def reoffer_waiting_tickets(*, now: datetime | None = None) -> int:
    """Offer tickets nobody could take (all offline, or the offered agent went away) once someone is online,
    in queue order (most urgent, then oldest first); outside business hours nobody is offered anything (the
    first sweep after the opening offers them)."""
    if not current_schedule().is_open(now or timezone.now()):
        return 0
    offered = 0
    schema = connection.schema_name
    # Servicers-mode tickets too: their offer names the servicer the session goes to (docs/KF_SESSIONS.md).
    waiting = in_queue_order(Ticket.objects.filter(status=Status.OPEN,
                                                   conversation__state=Conversation.State.WAITING_HUMAN))
    for ticket_id, current in list(waiting.values_list("pk", "offered_to_id")):
        if current and presence.status(schema=schema, user_id=current) == "online":
            continue
        with transaction.atomic():
            # Under the ticket's lock (skip_locked: a handoff or a claim has it now; the next sweep comes back).
            ticket = (Ticket.objects.select_for_update(skip_locked=True, of=("self",)).select_related("team")
                      .filter(pk=ticket_id, status=Status.OPEN, offered_to_id=current).first())
            if ticket is not None and offer_ticket(ticket=ticket):
                offered += 1
    return offered


def move_ticket_to_team(*, conversation_id: int, team: Team | None, by: Actor, origin: str = "") -> Ticket:
    """A supervisor (or the API) moves the conversation's ticket to another team's queue (None: no team). A
    waiting ticket offered to an agent outside the new team is offered again within it; its customer may be
    told their place in the new queue (tickets/teams/position.py)."""
    if isinstance(by, AgentProfile) and not by.is_supervisor:
        raise ActionRefused(_("Only a supervisor can move a ticket to another team."), code="not_supervisor")
    with transaction.atomic():
        conversation = _lock(conversation_id)
        ticket = _active_ticket(conversation)
        if ticket.status not in ACTIVE_TICKET:
            raise ActionRefused(_("This ticket is closed or resolved."), code="ticket_not_active")
        previous = ticket.team
        if (previous.pk if previous else None) == (team.pk if team else None):
            return ticket
        ticket.team = team
        ticket.queue_position_told = None  # a new queue: the place told before means nothing there
        ticket.save(update_fields=["team", "queue_position_told", "updated_at"])
        _event(ticket, _who(by), "team_changed", **{"from": previous.name if previous else None,
                                                    "to": team.name if team else None,
                                                    "team_id": team.pk if team else None})
        if ticket.status == Status.OPEN and conversation.state == Conversation.State.WAITING_HUMAN:
            members = {p.user_id for p in candidates_for(team)}
            if ticket.offered_to_id and ticket.offered_to_id not in members:
                ticket.offered_to = None
                ticket.save(update_fields=["offered_to", "updated_at"])
            if ticket.offered_to_id is None and current_schedule().is_open(timezone.now()):
                offer_ticket(ticket=ticket)
        realtime.queue_changed(conversation=conversation.pk, change="team", origin=origin)
        conversation_changed(conversation.pk, {"type": "ticket"}, origin=origin)
    return ticket


# --- WeCom servicers mode (the message path's second hook, registered in tickets/apps.py) --------------

def receive_kf_session_event(*, event: KfSessionEvent) -> None:
    """A servicers-mode conversation's WeCom session: the handoff message is out (transfer it), or a
    servicer took, passed on or ended it (the ticket follows). docs/KF_SESSIONS.md."""
    if event.change == KfSessionChange.HANDOFF_DELIVERED:
        transfer_to_servicers(conversation=event.conversation)
    elif event.change == KfSessionChange.ENDED:
        _servicer_ended(event)
    else:
        _servicer_took(event)


def transfer_to_servicers(*, conversation: Conversation) -> None:
    """Move the session to the servicer mapped to the offered or claiming agent (3), else to WeCom's pool
    (2). A refusal of 3 (95014 not a servicer, 95019 not receiving, 95016) falls back to 2; every refusal
    lands in the timeline. Transient errors raise, so the job is retried. Once per ticket."""
    ticket = Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_TICKET).order_by("-id").first()
    if ticket is None or ticket.events.filter(kind="kf_transferred").exists():
        return
    contact = conversation.contact
    user_ids = [user_id for user_id in (ticket.assignee_id, ticket.offered_to_id) if user_id]
    profiles = {p.user_id: p for p in AgentProfile.objects.filter(user_id__in=user_ids, is_active=True)
                .exclude(wecom_userid="")}
    holder = next((profiles[user_id] for user_id in user_ids if user_id in profiles), None)
    servicer = holder.wecom_userid if holder else ""
    steps = [(KF_SESSION_SERVICER, servicer)] if servicer else []
    for state, userid in [*steps, (KF_SESSION_POOL, "")]:
        try:
            WeComClient(contact.app).kf_transfer(open_kfid=contact.open_kfid, external_userid=contact.external_id,
                                                 service_state=state, servicer_userid=userid)
        except WeComError as exc:
            if exc.transient:
                raise
            with transaction.atomic():
                _event(ticket, None, "kf_state_failed", state=state, servicer=userid, errcode=exc.errcode,
                       reason=exc.errmsg[:200])
                conversation_changed(conversation.pk, {"type": "ticket"})
            continue
        with transaction.atomic():
            _event(ticket, None, "kf_transferred", state=state, servicer=userid)
            conversation_changed(conversation.pk, {"type": "ticket"})
            if state == KF_SESSION_SERVICER:  # the agent's own servicer holds the session now: theirs
                locked = _lock(conversation.pk)
                if locked.state == Conversation.State.WAITING_HUMAN:
                    _take(locked, holder, kind="claimed", origin="", servicer=userid)
        return


def _servicer_took(event: KfSessionEvent) -> None:
    """Taken from the pool, transferred or re-taken: assigned to the agent whose WeCom UserID it is; a
    servicer we do not know leaves the ticket open, named in the timeline. Conversation locked by the caller."""
    conversation = event.conversation
    profile = (AgentProfile.objects.filter(wecom_userid=event.servicer_userid, is_active=True)
               .select_related("user").first() if event.servicer_userid else None)
    if conversation.state == Conversation.State.BOT:  # taken without our handoff: the AI must stay silent
        change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)
    detail = {"servicer": event.servicer_userid, "previous_servicer": event.old_servicer_userid,
              "change": str(event.change)}
    if not Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_TICKET).exists():
        # The last ticket was closed (or there never was one): a servicer taking the session starts a new one.
        ticket = Ticket.objects.create(conversation=conversation, reason=Ticket.Reason.MANUAL)
        _event(ticket, None, "opened", reason=Ticket.Reason.MANUAL)
    if profile is not None:
        _take(conversation, profile, kind="kf_servicer_took", origin="", **detail)
        return
    _event(_active_ticket(conversation), None, "kf_servicer_took", agent=None, **detail)
    realtime.queue_changed(conversation=conversation.pk, change="waiting")
    conversation_changed(conversation.pk, {"type": "ticket"})


def _servicer_ended(event: KfSessionEvent) -> None:
    """Ended in the WeCom client: conversation and ticket close; WeCom's own flow said goodbye (if at all)."""
    conversation = event.conversation
    if conversation.state != Conversation.State.CLOSED:
        change_state(conversation=conversation, to=Conversation.State.CLOSED)
    ticket = _active_ticket(conversation)
    _event(ticket, None, "kf_session_ended", state=KF_SESSION_ENDED, servicer=event.old_servicer_userid
           or event.servicer_userid)
    if ticket.status != Status.CLOSED:
        change_ticket_status(ticket=ticket, to=Status.CLOSED, actor=None)
        csat.survey_not_possible(ticket=ticket, reason=csat.NotSent.ENDED_IN_WECOM_CLIENT)
    realtime.queue_changed(conversation=conversation.pk, change="closed")
    conversation_changed(conversation.pk, {"type": "state", "state": conversation.state})


# --- agent actions ------------------------------------------------------------------------------------

def claim_conversation(*, conversation_id: int, profile: AgentProfile, origin: str = "") -> Conversation:
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_answered_here(conversation)
        if conversation.state != Conversation.State.WAITING_HUMAN:
            owner = conversation.agent.get_username() if conversation.agent_id else None
            raise ActionRefused(_("Already taken by %(agent)s.") % {"agent": owner} if owner
                                else _("This conversation is not waiting."))
        if open_load([profile.user_id])[profile.user_id] >= profile.max_concurrent:
            raise ActionRefused(_("You already own %(n)d conversations (your limit).") % {"n": profile.max_concurrent})
        _take(conversation, profile, kind="claimed", origin=origin)
    return conversation


def reassign_conversation(*, conversation_id: int, to: AgentProfile, by: Actor,
                          origin: str = "") -> Conversation:
    if isinstance(by, AgentProfile) and not by.is_supervisor:
        raise ActionRefused(_("Only a supervisor can reassign."))
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_answered_here(conversation)
        if conversation.state not in (Conversation.State.WAITING_HUMAN, Conversation.State.HUMAN):
            raise ActionRefused(_("Only a conversation with humans can be reassigned."), code="not_with_humans")
        previous = conversation.agent_id
        _take(conversation, to, kind="reassigned", actor=_who(by), origin=origin, previous=previous)
    return conversation


def _take(conversation: Conversation, profile: AgentProfile, *, kind: str, origin: str, actor=None, **detail):
    if conversation.state == Conversation.State.WAITING_HUMAN:
        change_state(conversation=conversation, to=Conversation.State.HUMAN)
    conversation.agent = profile.user
    conversation.save(update_fields=["agent"])
    ticket = _active_ticket(conversation)
    mark_offered(profile)  # new work for them: to the back of the round-robin (after the ticket's lock)
    if ticket.status != Status.ASSIGNED:
        change_ticket_status(ticket=ticket, to=Status.ASSIGNED, actor=actor or profile.user)
    ticket.assignee = profile.user
    ticket.offered_to = None
    ticket.save(update_fields=["assignee", "offered_to", "updated_at"])
    _event(ticket, actor or profile.user, kind, agent=profile.name, **detail)
    realtime.queue_changed(conversation=conversation.pk, change="taken", agent=profile.name, origin=origin)
    conversation_changed(conversation.pk, {"type": "state", "state": conversation.state,
                                                    "agent": profile.name}, origin=origin)


def reply_as_agent(*, conversation_id: int, profile: AgentProfile, text: str, origin: str = "") -> Message:
    text = (text or "").strip()
    if not text:
        raise ActionRefused(_("The reply is empty."))
    if words := sensitive_words.found(text):
        _refuse_sensitive(conversation_id, profile, words)
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_answered_here(conversation)
        _require_owner(conversation, profile)
        _require_reply_allowed(conversation, parts=len(split_text(text)))
        message = record_message(conversation=conversation, author=Message.Author.AGENT, text=text, origin=origin)
        queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                       author=Message.Author.AGENT, text=text, cause=f"agent:{message.pk}")
        # The first response counts once it is delivered (record_delivered_first_responses), not now.
        _event(_active_ticket(conversation), profile.user, "agent_reply", message=message.pk)
    return message


ATTACHMENT_REFUSALS = {
    AttachmentProblem.EMPTY: gettext_lazy("The file is empty."),
    AttachmentProblem.TOO_LARGE: gettext_lazy("The file is larger than WeCom accepts (pictures 10 MB, files 20 MB)."),
}
ATTACHMENT_LABELS = {"image": gettext_lazy("[Picture]"), "file": gettext_lazy("[File]")}


def send_attachment_as_agent(*, conversation_id: int, profile: AgentProfile, file: File, origin: str = "") -> Message:
    """An agent's picture (JPG/PNG up to 10 MB) or file (up to 20 MB): stored, then uploaded and sent by the
    ledger like a reply. What WeCom would refuse (size, its reply limits) is refused here, with the reason."""
    name = PurePath(file.name or "").name[:100] or "file"
    msgtype, problem = attachment_msgtype(filename=name, size=file.size or 0)
    if problem is not None:
        raise ActionRefused(str(ATTACHMENT_REFUSALS[problem]))
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_answered_here(conversation)
        _require_owner(conversation, profile)
        _require_reply_allowed(conversation, parts=1)
        message = record_message(conversation=conversation, author=Message.Author.AGENT,
                                 text=f"{ATTACHMENT_LABELS[msgtype]} {name}", origin=origin)
        queue_outbound_media(contact=conversation.contact, conversation=conversation, message=message,
                             author=Message.Author.AGENT, msgtype=msgtype, file=file, name=name,
                             cause=f"agent:{message.pk}")
        _event(_active_ticket(conversation), profile.user, "agent_reply", message=message.pk, attachment=name)
    return message


def hand_back_to_ai(*, conversation_id: int, profile: Actor, origin: str = "") -> Conversation:
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_answered_here(conversation)
        _require_owner(conversation, profile)
        if not conversation.human_owned:  # a supervisor (or the API) reaches conversations the AI answers
            raise ActionRefused(_("This conversation is not with humans."), code="not_with_humans")
        change_state(conversation=conversation, to=Conversation.State.BOT)
        conversation.agent = None
        conversation.waiting_notice_sent = False
        conversation.save(update_fields=["agent", "waiting_notice_sent"])
        ticket = _active_ticket(conversation)
        _event(ticket, _who(profile), "handed_back")
        conversation_changed(conversation.pk, {"type": "state", "state": conversation.state, "agent": None},
                                      origin=origin)
    return conversation


def close_conversation(*, conversation_id: int, profile: Actor, origin: str = "") -> Conversation:
    with transaction.atomic():
        conversation = _lock(conversation_id)
        if conversation.state != Conversation.State.CLOSED:
            _require_owner(conversation, profile, allow_bot=True)
            change_state(conversation=conversation, to=Conversation.State.CLOSED)
        ticket = _active_ticket(conversation)
        if ticket.status != Status.CLOSED:
            change_ticket_status(ticket=ticket, to=Status.CLOSED, actor=_who(profile))
            _say_goodbye(conversation, ticket)
        realtime.queue_changed(conversation=conversation.pk, change="closed", origin=origin)
        conversation_changed(conversation.pk, {"type": "state", "state": conversation.state}, origin=origin)
    return conversation


def set_ticket_status(*, conversation_id: int, profile: Actor, to: str, origin: str = "") -> Ticket:
    if to not in SETTABLE_STATUSES:
        raise ActionRefused(_("Use close to close a conversation."), code="use_close")
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_owner(conversation, profile, allow_bot=True)
        ticket = _active_ticket(conversation)
        change_ticket_status(ticket=ticket, to=to, actor=_who(profile))
        conversation_changed(conversation.pk, {"type": "ticket", "status": ticket.status}, origin=origin)
    return ticket


def change_ticket_status(*, ticket: Ticket, to: str, actor) -> Ticket:
    if to not in TICKET_TRANSITIONS[ticket.status]:
        raise ActionRefused(_("A ticket cannot go from %(from)s to %(to)s.") % {
            "from": ticket.get_status_display(), "to": Status(to).label}, code="invalid_transition")
    previous = ticket.status
    ticket.status = to
    now = timezone.now()
    if to == Status.RESOLVED:
        ticket.resolved_at = now
    if to == Status.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    ticket.save()
    _event(ticket, actor, "status", **{"from": previous, "to": to})
    if to in (Status.RESOLVED, Status.CLOSED) and previous != Status.RESOLVED:
        propose_knowledge(ticket=ticket)  # the agent's answer, for an operator to add to the knowledge base
    return ticket


def add_note(*, conversation_id: int, profile: Actor, text: str, origin: str = "") -> TicketEvent:
    text = (text or "").strip()
    if not text:
        raise ActionRefused(_("The note is empty."))
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_owner(conversation, profile, allow_bot=True)
        event = _event(_active_ticket(conversation), _who(profile), "note", text=text[:NOTE_MAX_LENGTH])
        conversation_changed(conversation.pk, {"type": "ticket"}, origin=origin)
    return event


def promote_to_knowledge(*, conversation_id: int, profile: AgentProfile, question: str, answer: str):
    """Turn a customer question and an agent's answer into a knowledge entry in one step."""
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_owner(conversation, profile, allow_bot=True)
        try:
            entry = create_entry(question=question, answer=answer)
        except EntryInvalid as exc:
            raise ActionRefused("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from exc
        _event(_active_ticket(conversation), profile.user, "promoted_to_knowledge", entry=entry.pk,
               question=question[:200])
    return entry


# --- helpers --------------------------------------------------------------------------------------------

def _lock(conversation_id: int) -> Conversation:
    # No join to the agent here: after waiting for the lock PostgreSQL re-reads the locked row but
    # not rows joined to it, so a just-assigned agent would come back empty. Read it afterwards.
    conversation = (Conversation.objects.select_for_update(of=("self",)).select_related("contact__app")
                    .filter(pk=conversation_id).first())
    if conversation is None:
        raise ActionRefused(_("Conversation not found."))
    return conversation


REFUSALS = {
    Refusal.NO_CUSTOMER_MESSAGE: gettext_lazy("The customer has not written yet: WeCom allows no reply."),
    Refusal.WINDOW_CLOSED: gettext_lazy("More than 48 hours since the customer's last message: WeCom allows no reply "
                                 "until they write again."),
    Refusal.NO_REPLIES_LEFT: gettext_lazy("The 5 replies WeCom allows per customer message are used up: wait for the "
                                   "customer to write."),
}


def _require_reply_allowed(conversation: Conversation, *, parts: int) -> None:
    """Refuse up front what WeCom would refuse (微信客服: 48 h window, 5 replies per customer message)."""
    allowance = reply_allowance(contact=conversation.contact, parts=parts)
    if allowance.refusal is not None:
        raise ActionRefused(str(REFUSALS[allowance.refusal]))


def _require_answered_here(conversation: Conversation) -> None:
    """WeCom servicers mode: WeCom's servicers answer in the WeCom client (WeCom refuses our sends then)."""
    if conversation.contact.app.answered_in_wecom_client:
        raise ActionRefused(_("This conversation is answered by WeCom servicers in the WeCom client; "
                              "here it is read-only."), code="answered_in_wecom_client")


def _require_owner(conversation: Conversation, profile: Actor, *, allow_bot: bool = False) -> None:
    if isinstance(profile, Integration) or profile.is_supervisor:
        return
    if conversation.agent_id == profile.user_id:
        return
    if allow_bot and conversation.state in (Conversation.State.BOT, Conversation.State.CLOSED) and \
            Ticket.objects.filter(conversation=conversation, assignee_id=profile.user_id).exists():
        return  # the agent who had it may still resolve or close the ticket after handing back
    raise ActionRefused(_("You do not own this conversation; claim it first."), code="not_owner")


def _refuse_sensitive(conversation_id: int, profile: AgentProfile, words: list[str]) -> None:
    """An agent's reply with sensitive words (conversations/services/sensitive_words.py) is never sent: the
    refusal names them, and the ticket's timeline keeps it (the words, not the reply)."""
    with transaction.atomic():
        conversation = _lock(conversation_id)
        _require_owner(conversation, profile)
        _event(_active_ticket(conversation), profile.user, "reply_refused_sensitive", words=words)
    raise ActionRefused(_("Not sent: the reply contains sensitive words (%(words)s).") % {"words": "、".join(words)},
                        code="sensitive_words")


def _active_ticket(conversation: Conversation) -> Ticket:
    ticket = Ticket.objects.select_for_update().filter(conversation=conversation).order_by("-created_at").first()
    if ticket is None:
        ticket = Ticket.objects.create(conversation=conversation, reason=Ticket.Reason.MANUAL)
        _event(ticket, None, "opened", reason=Ticket.Reason.MANUAL)
    return ticket


def _who(actor: Actor):
    """The timeline's actor: the agent's user, or the integration (named by _event)."""
    return actor if isinstance(actor, Integration) else actor.user


def _event(ticket: Ticket, actor, kind: str, **detail) -> TicketEvent:
    if isinstance(actor, Integration):
        actor, detail = actor.user, {**detail, "by": actor.label}
    event = TicketEvent.objects.create(ticket=ticket, actor=actor, kind=kind, detail=detail)
    emit_ticket_event(ticket=ticket, kind=kind, detail=detail)  # ticket.created / ticket.updated webhooks
    return event


def _say_goodbye(conversation: Conversation, ticket: Ticket) -> None:
    """The closing message. 微信客服: the session is ended first (state 4), which hands back a code
    the closing message is sent with (kf/send_msg no longer works in state 4), so a job does both;
    the self-built app just sends it."""
    if conversation.contact.app.kind == WeComApp.Kind.KF:
        enqueue_end_kf_session(conversation_id=conversation.pk, ticket_id=ticket.pk)
    else:
        send_closing_message(conversation=conversation, ticket=ticket)


def send_closing_message(*, conversation: Conversation, ticket: Ticket, event_code: str = "") -> None:
    """The tenant's closing message, through the ledger, once per ticket (nothing when it is empty), and the
    satisfaction survey when one is due (tickets/csat.py)."""
    text = DeskSettings.current().closing_message.strip()
    if csat.survey_with_closing(conversation=conversation, ticket=ticket, closing=text, event_code=event_code):
        return  # 微信客服: the survey menu carries the closing text (the code allows one message)
    if text:
        message = record_message(conversation=conversation, author=Message.Author.NOTICE, text=text)
        queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                       author=Message.Author.NOTICE, text=text, cause=f"closing:{ticket.pk}", event_code=event_code)
    csat.survey_after_closing(conversation=conversation, ticket=ticket)  # self-built app: the question follows


def end_kf_session(*, conversation_id: int, ticket_id: int) -> None:
    """微信客服: end the WeCom session (service_state 4) and say goodbye with the code WeCom returns.

    WeCom refusing (a session already ended by WeCom after 48 h, 95013/95016) lands in the
    timeline and on the screen; no closing message can be sent then. Transient errors raise, so
    the job is retried.
    """
    conversation = Conversation.objects.select_related("contact__app").filter(pk=conversation_id).first()
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if conversation is None or ticket is None or ticket.events.filter(kind="kf_session_ended").exists():
        return
    contact = conversation.contact
    try:
        result = WeComClient(contact.app).kf_transfer(open_kfid=contact.open_kfid,
                                                      external_userid=contact.external_id,
                                                      service_state=KF_SESSION_ENDED)
    except WeComError as exc:
        if exc.transient:
            raise
        with transaction.atomic():
            _event(ticket, None, "kf_state_failed", state=KF_SESSION_ENDED, errcode=exc.errcode,
                   reason=exc.errmsg[:200])
            csat.survey_not_possible(ticket=ticket, reason=csat.NotSent.NO_EVENT_CODE)
            conversation_changed(conversation_id, {
                "type": "error", "message": _("WeCom refused to end the 微信客服 session: errcode %(code)s %(reason)s")
                % {"code": exc.errcode, "reason": exc.errmsg[:120]}})
        return
    with transaction.atomic():
        _event(ticket, None, "kf_session_ended", state=KF_SESSION_ENDED)
        send_closing_message(conversation=conversation, ticket=ticket, event_code=str(result.get("msg_code", "")))
        conversation_changed(conversation_id, {"type": "ticket"})  # the timeline on open screens
