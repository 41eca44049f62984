"""Queue position notices (tickets/teams/position.py): "您前面还有 N 位客户，请稍候。" with the handoff message, then
only when the place moved meaningfully, rate-limited, through the ledger, and never a 微信客服 customer's last reply."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, InboundMessage, Message, OutboundMessage
from conversations.services.handoff import hand_off_to_human
from conversations.services.reply_limits import reply_allowance
from testing.factories import (
    AgentProfileFactory,
    ConversationFactory,
    InboundMessageFactory,
    MessageFactory,
    OutboundMessageFactory,
    WeComAppFactory,
)
from tickets.models import Ticket, TicketEvent, TicketSettings
from tickets.services import claim_conversation
from tickets.teams.models import Team
from tickets.teams.position import queue_position, tell_queue_positions

pytestmark = pytest.mark.django_db
LATER = timedelta(minutes=6)  # past the default 5 minutes between two notices


def hand_off(app, text: str = "我要退款", customer: str | None = None) -> Ticket:
    conversation = ConversationFactory(contact__app=app, **({"contact__external_id": customer} if customer else {}))
    MessageFactory(conversation=conversation, text=text)
    receipt = hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED,
                                desk=DeskSettings.current())
    return Ticket.objects.get(pk=receipt.ticket_id)


def handoff_text(ticket: Ticket) -> str:
    return Message.objects.get(conversation_id=ticket.conversation_id, author=Message.Author.HANDOFF).text


def notices(ticket: Ticket) -> list[str]:
    return list(Message.objects.filter(conversation_id=ticket.conversation_id, author=Message.Author.NOTICE)
                .values_list("text", flat=True))


def take(ticket: Ticket, agent) -> None:
    claim_conversation(conversation_id=ticket.conversation_id, profile=agent)


def test_the_place_joins_the_handoff_message_and_counts_only_the_same_teams_queue(alpha_app):
    with schema_context("alpha"):
        Team.objects.create(name="售后", keywords=["退款"])
        Team.objects.create(name="账单", keywords=["发票"])
        first = hand_off(alpha_app)
        assert handoff_text(first) == "正在为您转接人工客服，请稍候。\n人工客服暂时不在线，我们会尽快回复您。"
        hand_off(alpha_app, "发票")  # another team's queue
        third = hand_off(alpha_app)
        assert handoff_text(third).endswith("您前面还有 1 位客户，请稍候。")
        assert OutboundMessage.objects.filter(conversation_id=third.conversation_id).count() == 1  # one message
        third.refresh_from_db()
        assert third.queue_position_told == 1
        urgent = hand_off(alpha_app)
        Ticket.objects.filter(pk=urgent.pk).update(priority=Ticket.Priority.URGENT)
        assert [queue_position(t) for t in (first, third)] == [1, 2]  # the urgent ticket goes first


def test_the_sweep_tells_a_meaningful_drop_once_and_not_the_small_ones(alpha_app):
    with schema_context("alpha"):
        agent = AgentProfileFactory(max_concurrent=20)
        ahead = [hand_off(alpha_app) for _ in range(5)]  # told 0 (nothing), 1, 2, 3, 4 with the handoff message
        last = hand_off(alpha_app)
        last.refresh_from_db()
        assert last.queue_position_told == 5
        take(ahead[0], agent)
        take(ahead[1], agent)
        # last: 5 -> 3 and ahead[4]: 4 -> 2, less than the step (3); ahead[3]: 3 -> 1, reaching 1.
        assert tell_queue_positions(now=timezone.now() + LATER).told == {ahead[3].pk: 1}
        take(ahead[2], agent)  # last: 5 -> 2 (the step); ahead[4]: 4 -> 1
        result = tell_queue_positions(now=timezone.now() + LATER)
        assert result.told == {ahead[4].pk: 1, last.pk: 2}
        assert notices(last) == ["您前面还有 2 位客户，请稍候。"]
        row = OutboundMessage.objects.get(conversation_id=last.conversation_id, author=Message.Author.NOTICE)
        assert row.survives_handoff and row.idempotency_key == f"queue:{last.pk}:2:1"
        assert TicketEvent.objects.get(ticket=last, kind="queue_position").detail == {"position": 2, "team": None}
        take(ahead[3], agent)  # last: 2 -> 1, reaching 1, but its last notice was just now
        assert tell_queue_positions(now=timezone.now() + timedelta(minutes=1)).told == {}
        assert tell_queue_positions(now=timezone.now() + 2 * LATER).told == {last.pk: 1}
        assert tell_queue_positions(now=timezone.now() + 4 * LATER).told == {}  # told 1 already
        assert notices(last) == ["您前面还有 2 位客户，请稍候。", "您前面还有 1 位客户，请稍候。"]
        assert notices(ahead[2]) == []  # 2 -> 0: next in line, nothing to tell


def test_a_notice_that_would_use_the_last_reply_is_kept_back(tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        agent = AgentProfileFactory(max_concurrent=20)
        ahead = [hand_off(app, customer=f"wx-{n}") for n in range(4)]
        customer = "wx-last"
        InboundMessageFactory(app=app, sender=customer, open_kfid=app.open_kfids[0], origin=3, content="退款",
                              sent_at=timezone.now(), status=InboundMessage.Status.PROCESSED)
        last = hand_off(app, customer=customer)
        contact = Conversation.objects.get(pk=last.conversation_id).contact
        for _ in range(3):
            OutboundMessageFactory(contact=contact, status=OutboundMessage.Status.SENT)
        assert reply_allowance(contact=contact).replies_left == 1
        for ticket in ahead[:3]:
            take(ticket, agent)  # 4 -> 1
        result = tell_queue_positions(now=timezone.now() + LATER)
        assert result.told == {} and result.kept_back == {last.pk: "no_replies_left"}
        assert notices(last) == [] and reply_allowance(contact=contact).replies_left == 1
        # The customer writes again: five new replies, and the place is told.
        InboundMessageFactory(app=app, sender=customer, open_kfid=app.open_kfids[0], origin=3, content="还要多久",
                              sent_at=timezone.now() + timedelta(seconds=1), status=InboundMessage.Status.PROCESSED)
        assert tell_queue_positions(now=timezone.now() + LATER).told == {last.pk: 1}


def test_notices_off_tell_nothing(alpha_app):
    with schema_context("alpha"):
        TicketSettings.objects.update_or_create(pk=1, defaults={"queue_position_notices": False})
        agent = AgentProfileFactory(max_concurrent=20)
        ahead = [hand_off(alpha_app) for _ in range(3)]
        last = hand_off(alpha_app)
        assert "前面" not in handoff_text(last)
        for ticket in ahead:
            take(ticket, agent)
        Ticket.objects.filter(pk=last.pk).update(queue_position_told=None, queue_position_told_at=None)
        hand_off(alpha_app)  # one behind it, so the queue is not empty
        assert tell_queue_positions(now=timezone.now() + LATER).told == {}


def test_a_second_tenants_queue_is_not_counted(alpha_app, tenant_b):
    with schema_context("beta"):
        beta_app = WeComAppFactory()
        for _ in range(3):
            hand_off(beta_app)
    with schema_context("alpha"):
        first = hand_off(alpha_app)
        assert queue_position(first) == 0 and "前面" not in handoff_text(first)
        assert tell_queue_positions(now=timezone.now() + LATER).told == {}
    with schema_context("beta"):
        assert Ticket.objects.count() == 3
