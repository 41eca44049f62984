"""Satisfaction surveys (CSAT): after humans handled a conversation and it closed, the customer is asked once
how the service was (docs/AGENTS.md, "Satisfaction surveys").

- 微信客服: the closing message goes out with the code WeCom returns when the session ends, and that code
  allows exactly one message (send_msg_on_event, docs/WECOM_PROTOCOL.md 4.2): the survey is that message, a
  msgmenu headed by the closing text and the question, one click item per answer ("csat:<ticket>:<score>").
  No code (WeCom refused to end the session, or a servicer ended it in the WeCom client), or a head over
  WeCom's 1024 bytes: no survey; the survey row says why.
- self-built app: the question as a text after the closing message, answered with a number ("1 满意 ...").

The answer arrives through the message path, which asks `receive_survey_answer` (registered in
tickets/apps.py through conversations/services/surveys.py) only for contacts marked in Redis when the
survey went out. The first valid answer within the window counts; later ones are ordinary messages.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone

from conversations.models import Contact, Conversation, InboundMessage, Message, WeComApp
from conversations.realtime import conversation_changed
from conversations.services.conversations import record_message
from conversations.services.menus import HEAD_TAIL_MAX_BYTES, Menu, MenuClick, MenuItem
from conversations.services.outbound import queue_outbound
from conversations.services.surveys import SURVEY_ITEM_PREFIX, SurveyAnswer, clear_pending, mark_pending
from tickets.csat_models import SCALES, CsatSettings, Survey
from tickets.models import Ticket, TicketEvent

# Ticket events that mean a human handled the conversation (an assignee is the usual sign).
HUMAN_EVENTS = ("claimed", "reassigned", "agent_reply", "kf_servicer_took")
_IGNORED = re.compile(r"[\s。！!？?，,.~～、]+")


class NotSent:
    """Why a survey was not sent (Survey.reason; the timeline shows it)."""

    NO_EVENT_CODE = "no_event_code"  # 微信客服: no send_msg_on_event code, so WeCom allows no message
    ENDED_IN_WECOM_CLIENT = "ended_in_wecom_client"  # a servicer ended it: WeCom's code never reaches us
    TOO_LONG = "menu_head_too_long"  # closing text + question over msgmenu's 1024-byte head


# --- sending --------------------------------------------------------------------------------------------

def due(ticket: Ticket) -> CsatSettings | None:
    """The tenant's survey settings when this closed ticket gets a survey: surveys on, humans handled it,
    and it has none yet (a redelivered job asks once)."""
    policy = CsatSettings.current()
    if not policy.enabled or Survey.objects.filter(ticket=ticket).exists():
        return None
    if ticket.assignee_id is None and not ticket.events.filter(kind__in=HUMAN_EVENTS).exists():
        return None  # the bot alone answered, or an agent only closed it
    return policy


def items(ticket: Ticket, policy: CsatSettings) -> tuple[MenuItem, ...]:
    labels = policy.labels
    return tuple(MenuItem(id=f"{SURVEY_ITEM_PREFIX}{ticket.pk}:{len(labels) - position}", content=label)
                 for position, label in enumerate(labels))


def prompt_text(policy: CsatSettings) -> str:
    """The self-built app's question: a number per answer, best first."""
    answers = " / ".join(f"{number} {label}" for number, label in enumerate(policy.labels, start=1))
    return f"{policy.question.strip()}\n回复 {answers}"


def kf_closing_menu(*, ticket: Ticket, policy: CsatSettings, closing: str) -> Menu | None:
    """The one message the session-end code allows: the closing text and the question over the answers;
    None when the head would be longer than WeCom accepts."""
    head = "\n\n".join(filter(None, [closing.strip(), policy.question.strip()]))
    if len(head.encode()) > HEAD_TAIL_MAX_BYTES:
        return None
    return Menu(head=head, items=items(ticket, policy))


def send_kf_closing_survey(*, conversation: Conversation, ticket: Ticket, policy: CsatSettings, closing: str,
                           event_code: str) -> bool:
    """微信客服: the closing message and the survey as one menu with the session-end code. False (the row says
    why) when it cannot be: the caller then sends the closing text alone."""
    menu = kf_closing_menu(ticket=ticket, policy=policy, closing=closing) if event_code else None
    if menu is None:
        not_sent(ticket=ticket, policy=policy, reason=NotSent.NO_EVENT_CODE if not event_code else NotSent.TOO_LONG)
        return False
    message = record_message(conversation=conversation, author=Message.Author.NOTICE, text=menu.as_text())
    queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                   author=Message.Author.NOTICE, text=menu.as_text(), cause=f"closing:{ticket.pk}",
                   event_code=event_code, menu=menu)
    _sent(ticket=ticket, conversation=conversation, policy=policy)
    return True


def send_app_survey(*, conversation: Conversation, ticket: Ticket, policy: CsatSettings) -> None:
    """Self-built app: the question after the closing message, answered with a number."""
    text = prompt_text(policy)
    message = record_message(conversation=conversation, author=Message.Author.NOTICE, text=text)
    queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                   author=Message.Author.NOTICE, text=text, cause=f"csat:{ticket.pk}")
    _sent(ticket=ticket, conversation=conversation, policy=policy)


def survey_with_closing(*, conversation: Conversation, ticket: Ticket, closing: str, event_code: str) -> bool:
    """微信客服, from the closing message (tickets.services.send_closing_message): True when the survey went out
    carrying the closing text (the session-end code's one message), so the caller sends nothing more."""
    if conversation.contact.app.kind != WeComApp.Kind.KF or (policy := due(ticket)) is None:
        return False
    return send_kf_closing_survey(conversation=conversation, ticket=ticket, policy=policy, closing=closing,
                                  event_code=event_code)


def survey_after_closing(*, conversation: Conversation, ticket: Ticket) -> None:
    """Self-built app, after the closing message is queued: the question, when one is due."""
    if conversation.contact.app.kind == WeComApp.Kind.KF or (policy := due(ticket)) is None:
        return
    send_app_survey(conversation=conversation, ticket=ticket, policy=policy)


def survey_not_possible(*, ticket: Ticket, reason: str) -> None:
    """A closed ticket whose survey cannot go out under WeCom's rules: recorded (when one was due)."""
    policy = due(ticket)
    if policy is not None:
        not_sent(ticket=ticket, policy=policy, reason=reason)


def not_sent(*, ticket: Ticket, policy: CsatSettings, reason: str) -> Survey:
    survey = Survey.objects.create(ticket=ticket, contact_id=ticket.conversation.contact_id,
                                   agent_id=ticket.assignee_id, status=Survey.Status.NOT_SENT, reason=reason,
                                   scale=policy.scale)
    TicketEvent.objects.create(ticket=ticket, kind="csat_not_sent", detail={"reason": reason})
    return survey


def _sent(*, ticket: Ticket, conversation: Conversation, policy: CsatSettings) -> Survey:
    seconds = policy.window_hours * 3600
    survey = Survey.objects.create(ticket=ticket, contact_id=conversation.contact_id, agent_id=ticket.assignee_id,
                                   status=Survey.Status.SENT, scale=policy.scale,
                                   expires_at=timezone.now() + timedelta(seconds=seconds))
    TicketEvent.objects.create(ticket=ticket, kind="csat_sent", detail={"scale": policy.scale})
    contact_id = conversation.contact_id
    transaction.on_commit(lambda: mark_pending(contact_id=contact_id, seconds=seconds))
    return survey


# --- the answer (the message path's hook) -----------------------------------------------------------------

def receive_survey_answer(*, contact: Contact, inbound: InboundMessage, text: str,
                          click: MenuClick | None) -> SurveyAnswer | None:
    """Inside the answering round's transaction: store the answer this message gives to the contact's open
    survey; None when there is none or the message is no answer (it is then an ordinary message)."""
    survey = (Survey.objects.select_for_update().filter(contact=contact, status=Survey.Status.SENT,
                                                        expires_at__gt=timezone.now())
              .order_by("-sent_at").first())
    if survey is None:
        transaction.on_commit(lambda: clear_pending(contact_id=contact.pk))
        return None
    score = _score(survey, text=text, click=click)
    if score is None:
        return None
    labels = SCALES[survey.scale]
    survey.score, survey.label = score, labels[len(labels) - score]
    survey.status, survey.answered_at, survey.inbound_id = Survey.Status.ANSWERED, timezone.now(), inbound.pk
    survey.save(update_fields=["score", "label", "status", "answered_at", "inbound_id"])
    ticket = survey.ticket
    TicketEvent.objects.create(ticket=ticket, kind="csat_answered",
                               detail={"score": score, "label": survey.label, "scale": survey.scale})
    transaction.on_commit(lambda: clear_pending(contact_id=contact.pk))
    conversation_changed(ticket.conversation_id, {"type": "ticket"})
    return SurveyAnswer(ticket_id=ticket.pk, score=score, label=survey.label, thanks=CsatSettings.current().thanks)


def _score(survey: Survey, *, text: str, click: MenuClick | None) -> int | None:
    """The score (1 worst .. n best) a click on this survey's items, a reply number or a label gives."""
    labels = SCALES[survey.scale]
    if click is not None:
        if not click.menu_id.startswith(SURVEY_ITEM_PREFIX):
            return None
        ticket, _sep, score = click.menu_id.removeprefix(SURVEY_ITEM_PREFIX).partition(":")
        if ticket != str(survey.ticket_id) or not (score.isascii() and score.isdigit()):
            return None
        return int(score) if 1 <= int(score) <= len(labels) else None
    said = _IGNORED.sub("", text)
    if said.isascii() and said.isdigit() and 1 <= int(said) <= len(labels):
        return len(labels) - int(said) + 1  # the reply number is the position, best first
    if said in labels:
        return len(labels) - labels.index(said)
    return None


# --- reports (selectors) ------------------------------------------------------------------------------------

def csat_by_agent(*, start: datetime, end: datetime) -> list[dict]:
    """Answered surveys per agent and scale in [start, end) (answered_at): counts per score and the average
    score. One row per (agent, scale): a 3-point and a 5-point average are not comparable."""
    rows = (Survey.objects.filter(status=Survey.Status.ANSWERED, answered_at__gte=start, answered_at__lt=end)
            .values("agent_id", "agent__username", "scale")
            .annotate(answered=Count("id"), average=Avg("score"),
                      **{f"score_{n}": Count("id", filter=Q(score=n)) for n in range(1, 6)})
            .order_by("agent__username", "scale"))
    result = []
    for row in rows:
        size = len(SCALES[row["scale"]])
        result.append({"agent_id": row["agent_id"], "agent": row["agent__username"], "scale": row["scale"],
                       "answered": row["answered"], "average": round(row["average"], 2),
                       "counts": {n: row[f"score_{n}"] for n in range(1, size + 1)}})
    return result
