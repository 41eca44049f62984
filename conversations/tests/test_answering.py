"""The answer pipeline in-process against the sandbox (WeCom + fake model): one outcome per message."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from conversations.ai.breaker import breaker_state, reset_breaker
from conversations.metrics import BREAKER_OPEN
from conversations.models import (
    Contact,
    Conversation,
    DeskSettings,
    InboundMessage,
    Message,
    TraceEvent,
)
from conversations.schedule import measure_message_path
from conversations.services.answering import ClaimerSlots, answer_contact, answer_pending
from conversations.services.outbound import deliver_for_contact
from conversations.services.tracing import add_trace_event
from testing.factories import AIProviderFactory, FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.wecom import customer_says
from tickets.models import Ticket

pytestmark = pytest.mark.django_db
USER = "zhangsan"
# The handoff message, with the "nobody is online" notice joined (no agent is online in these tests).
HANDOFF_NOBODY_ONLINE = ("正在为您转接人工客服，请稍候。\n"
                         "人工客服暂时不在线，我们会尽快回复您。")


def run(app, user: str = USER) -> list[str]:
    """Answer and deliver everything pending for the user; return what they received."""
    contact = Contact.objects.get(app=app, external_id=user)
    assert answer_contact(contact) is None
    assert deliver_for_contact(contact.pk) is None
    return received(user)


received_by = {}


def received(user: str = USER) -> list[str]:
    return [text.rstrip("\u200b") for text in received_by["sandbox"].received_texts(user)]


@pytest.fixture
def world(tenant_a, sandbox, redis_client):
    received_by["sandbox"] = sandbox
    for pattern in ("LIMITS*", "*:rate-notice:*"):
        for key in redis_client.scan_iter(pattern):
            redis_client.delete(key)
    connection.set_schema_to_public()
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = WeComAppFactory()
        KnowledgeEntryFactory(question="如何申请退货？", answer="七天内可在订单页申请无理由退货。",
                              tags=["退货", "不合适"])
        KnowledgeEntryFactory(question="怎么开发票？", answer="在订单详情页申请电子发票。", tags=["发票"])
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
        FallbackScriptFactory(name="物流", keywords=["快递"], text="物流请查看订单页。")
        yield app
        reset_breaker("alpha")


@pytest.fixture
def provider(world, sandbox):
    with schema_context("alpha"):
        return AIProviderFactory(base_url=sandbox.model_base_url, api_key="k-alpha", timeout_seconds=2,
                                 breaker_fail_max=2, breaker_reset_timeout_seconds=60)


def stages(inbound: InboundMessage) -> list[str]:
    return list(TraceEvent.objects.filter(trace_id=inbound.trace_id).values_list("stage", flat=True))


def test_knowledge_only_mode_answers_with_the_best_entry_or_a_fallback(world):
    with schema_context("alpha"):
        question = customer_says(world, "买的衣服不合适能退吗")
        customer_says(world, "今天天气怎么样")
        assert run(world) == ["七天内可在订单页申请无理由退货。", "抱歉，请稍后再试。"]
        assert {"retrieved", "processed", "sent"} <= set(stages(question))
        question.refresh_from_db()
        assert question.status == InboundMessage.Status.PROCESSED


def test_the_model_answers_with_context_and_knowledge(world, provider, sandbox):
    with schema_context("alpha"):
        customer_says(world, "你好")
        customer_says(world, "怎么开发票")
        assert run(world) == ["您好，我是智能客服。您说：「你好」", "根据资料：在订单详情页申请电子发票。"]
    last_call = sandbox.model_calls()[-1]
    contents = [m["content"] for m in last_call["messages"]]
    assert "在订单详情页申请电子发票。" in contents[0]  # knowledge in the system prompt
    assert contents[1:] == ["你好", "您好，我是智能客服。您说：「你好」", "怎么开发票"]  # context, then question
    assert last_call["api_key"] == "k-alpha"


def test_model_failures_give_fallbacks_then_the_breaker_opens_and_calls_stop(world, provider, sandbox):
    sandbox.model_configure(available=False)
    with schema_context("alpha"):
        for text in ("快递到哪了", "怎么开发票", "在吗"):
            customer_says(world, text)
        desk = DeskSettings.current()
        desk.max_consecutive_fallbacks = 10
        desk.save()
        assert run(world) == ["物流请查看订单页。", "抱歉，请稍后再试。", "抱歉，请稍后再试。"]
        assert breaker_state("alpha")["state"] == "open"
    assert len(sandbox.model_calls()) == 2  # the third message did not wait for a dead model
    measure_message_path()  # the breaker's gauge: read from Redis by the leading scheduler
    assert BREAKER_OPEN.values[("alpha",)] == 1
    assert REGISTRY.get_sample_value("wecomdesk_llm_seconds_count", {"tenant": "alpha", "outcome": "breaker_open"}) >= 1


def test_the_model_not_knowing_hands_off_with_a_ticket(world, provider, sandbox):
    with schema_context("alpha"):
        inbound = customer_says(world, "你们老板叫什么名字")
        assert run(world) == [HANDOFF_NOBODY_ONLINE]
        conversation = Conversation.objects.get()
        assert conversation.state == Conversation.State.WAITING_HUMAN
        assert Ticket.objects.get().reason == Ticket.Reason.AI_CANNOT_ANSWER
        assert "handoff" in stages(inbound)


def test_asking_for_a_human_hands_off_and_then_the_bot_stays_silent(world, provider, sandbox):
    with schema_context("alpha"):
        customer_says(world, "转人工")
        customer_says(world, "怎么开发票")  # a human owns it now: routed to the agents, not answered
        assert run(world) == [HANDOFF_NOBODY_ONLINE]
        assert Ticket.objects.get().reason == Ticket.Reason.CUSTOMER_ASKED
        assert list(Message.objects.values_list("author", flat=True)) == ["customer", "handoff", "customer"]
        assert not InboundMessage.objects.filter(status=InboundMessage.Status.PENDING).exists()


def test_consecutive_fallbacks_end_in_a_handoff(world):
    with schema_context("alpha"):
        for text in ("一", "二", "三"):
            customer_says(world, f"无关问题{text}")
        assert run(world) == ["抱歉，请稍后再试。", "抱歉，请稍后再试。", HANDOFF_NOBODY_ONLINE]
        assert Ticket.objects.get().reason == Ticket.Reason.REPEATED_FALLBACKS


def test_rate_limited_customer_gets_one_notice(world):
    with schema_context("alpha"):
        desk = DeskSettings.current()
        desk.user_rate_limit = 2
        desk.max_consecutive_fallbacks = 10
        desk.save()
        messages = [customer_says(world, f"怎么开发票{i}") for i in range(5)]
        assert run(world) == ["在订单详情页申请电子发票。"] * 2 + [desk.rate_limit_notice]
        statuses = [InboundMessage.objects.get(pk=m.pk).status for m in messages]
        assert statuses == ["processed", "processed", "rate_limited", "rate_limited", "rate_limited"]


def test_one_contact_is_answered_in_order_while_others_are_independent(world):
    with schema_context("alpha"):
        desk = DeskSettings.current()
        desk.max_consecutive_fallbacks = 100
        desk.save()
        for i in range(20):
            customer_says(world, f"怎么开发票 {i}")
        customer_says(world, "怎么开发票", user="lisi")
        run(world)
        answered = list(InboundMessage.objects.filter(sender=USER).order_by("processed_at", "id")
                        .values_list("content", flat=True))
        assert answered == [f"怎么开发票 {i}" for i in range(20)]
        assert run(world, user="lisi") == ["在订单详情页申请电子发票。"]


def test_a_round_answers_many_contacts_with_the_same_statements_as_one(world, provider):
    """Batching: the SQL of a round does not grow with its contacts (the point of answering in rounds)."""

    def statements_to_answer(users: list[str]) -> int:
        for user in users:
            customer_says(world, "怎么开发票", user=user)
        with CaptureQueriesContext(connection) as captured:
            assert answer_pending(deliver=False) is None
        return len(captured.captured_queries)

    with schema_context("alpha"):
        statements_to_answer(["u-warm-up"])  # first-time rows (desk settings) and lookups
        one = statements_to_answer(["u-one"])
        many = statements_to_answer([f"u-many-{i}" for i in range(12)])
        assert many == one
        answered = Message.objects.filter(author=Message.Author.AI).count()
        assert answered == 14 and not InboundMessage.objects.filter(status="pending").exists()


def test_the_tenant_tier_answers_what_fits_and_defers_the_rest_in_order(world):
    with schema_context("alpha"):
        desk = DeskSettings.current()
        desk.tenant_rate_limit = 2
        desk.save()
        for user in ("u1", "u2", "u3"):
            customer_says(world, "怎么开发票", user=user)
        customer_says(world, "怎么开发票 again", user="u3")  # behind the deferred one: must wait too
        delay = answer_pending()
        assert delay is not None and 0 < delay <= 60
        assert received("u1") == received("u2") == ["在订单详情页申请电子发票。"]  # delivered by the same job
        assert received("u3") == []
        waiting = list(InboundMessage.objects.filter(sender="u3").order_by("id"))
        assert [m.status for m in waiting] == ["pending", "pending"]
        assert "deferred" in stages(waiting[0])


def test_a_round_answers_only_its_own_tenants_messages(world, tenant_b):
    """Claims, contacts and knowledge are read in the job's schema: beta's waiting customer is not alpha's."""
    connection.set_schema_to_public()
    with schema_context("beta"):
        beta_app = WeComAppFactory()
        beta_message = customer_says(beta_app, "怎么开发票")  # same member id, same app ids, another tenant
    with schema_context("alpha"):
        alpha_message = customer_says(world, "怎么开发票")
        assert answer_pending(deliver=False) is None
        alpha_message.refresh_from_db()
        assert alpha_message.status == InboundMessage.Status.PROCESSED
    with schema_context("beta"):
        beta_message.refresh_from_db()
        assert beta_message.status == InboundMessage.Status.PENDING
        assert not Message.objects.exists() and not Conversation.objects.exists()


def test_claimer_slots_are_per_tenant_and_a_claimer_stays_while_work_arrives(settings):
    settings.ANSWER_CLAIMERS_PER_PROCESS = 1
    slots = ClaimerSlots()
    assert slots.enter("alpha")
    assert slots.enter("beta")  # another tenant has slots of its own
    slots.start_pass("alpha")
    assert not slots.enter("alpha")  # taken: this job leaves its message to the claimer...
    assert not slots.leave("alpha", unless_new_work=True)  # ...who sees the new work and claims again
    slots.start_pass("alpha")
    assert slots.leave("alpha", unless_new_work=True)  # nothing new since the pass began: it leaves
    assert slots.enter("alpha")


def test_a_messages_trace_reads_in_the_order_things_happened(world, provider, sandbox):
    sandbox.model_configure(available=False)
    with schema_context("alpha"):
        failed = customer_says(world, "在吗")
        run(world)
        sandbox.model_configure(available=True)
        unknown = customer_says(world, "你们老板叫什么名字")
        run(world)
        assert stages(failed) == ["received", "enqueued", "retrieved", "llm_call", "fallback", "processed", "sent"]
        assert stages(unknown) == ["received", "enqueued", "retrieved", "llm_call", "handoff", "processed", "sent"]
        llm_call = TraceEvent.objects.get(trace_id=failed.trace_id, stage="llm_call")
        assert llm_call.detail["outcome"] == "error" and llm_call.detail["ms"] >= 0


def test_a_stage_outside_the_vocabulary_is_refused(world):
    with schema_context("alpha"):
        inbound = customer_says(world, "你好")
        with pytest.raises(ValueError, match="procesed"):
            add_trace_event(inbound=inbound, stage="procesed")
        assert "procesed" not in stages(inbound)
