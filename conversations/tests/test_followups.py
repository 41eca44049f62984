"""Follow-up questions made standalone before retrieval (conversations/services/answering/followups.py):
the rule on its own, then whole answering rounds in-process against the sandbox (WeCom + fake model)."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations.ai.breaker import breaker_state, reset_breaker
from conversations.models import Contact, DeskSettings, InboundMessage, TraceEvent
from conversations.selectors import message_trace
from conversations.services.answering import answer_contact
from conversations.services.answering.followups import earlier_topic, looks_like_followup, rule_standalone
from conversations.services.answering.model_calls import REWRITE_MAX_TOKENS
from conversations.services.outbound import deliver_for_contact
from conversations.vocabulary import Stage
from testing.factories import AIProviderFactory, FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.wecom import customer_says
from wecom_sandbox.prompt_contract import parse_knowledge

pytestmark = pytest.mark.django_db

USER = "zhangsan"
RETURN_SHIPPING = "退货运费由商家承担，寄回时选择到付即可。"
SHIPPING_FEE = "订单满 99 元包邮，不满收 8 元运费。"
RETURNS = "七天内可在订单页申请无理由退货。"
FALLBACK = "抱歉，请稍后再试。"


# -- the rule on the message alone ------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "那运费呢？", "运费呢", "那换货呢", "这个多少钱", "多少钱？", "要多久？", "它防水吗", "那如果超过七天呢",
    "其他颜色呢", "那能退吗", "那个呢", "还有呢", "怎么样？", "what about shipping?", "How about returns",
])
def test_the_rule_takes_short_leaning_messages_for_follow_ups(text):
    assert looks_like_followup(text)


@pytest.mark.parametrize("text", [
    "怎么退货", "怎么开发票", "能退货吗", "今天天气怎么样", "还有发票怎么开", "我的快递三天了还没到，怎么回事",
    "那个快递怎么还没到", "买的衣服不合适能退吗", "几天能到", "你好", "谢谢", "好的", "在吗", "那好吧", "嗯嗯", "",
    "How do I return an item?", "那运费呢？我上周买的外套尺码不合适，想寄回去换一件大一号的",
])
def test_the_rule_leaves_standalone_questions_and_small_talk_alone(text):
    assert not looks_like_followup(text)


def test_the_rule_joins_the_earlier_questions_topic_with_the_follow_up():
    context = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "您好"},
               {"role": "user", "content": "怎么退货？"}, {"role": "assistant", "content": RETURNS}]
    assert earlier_topic(context) == ["退货"]
    assert rule_standalone("那运费呢？", ["退货"]) == "退货 运费"
    assert rule_standalone("多少钱？", ["退货"]) == "退货 多少钱"
    # A follow-up of a follow-up leans on the question before it too.
    chained = [*context, {"role": "user", "content": "那运费呢？"}, {"role": "assistant", "content": "…"}]
    assert earlier_topic(chained) == ["退货", "运费"]
    assert earlier_topic([{"role": "user", "content": "你好"}]) == []  # small talk explains nothing


# -- whole rounds ------------------------------------------------------------------------------------

received_by = {}


def run(app, user: str = USER) -> list[str]:
    contact = Contact.objects.get(app=app, external_id=user)
    assert answer_contact(contact) is None
    assert deliver_for_contact(contact.pk) is None
    return [text.rstrip("\u200b") for text in received_by["sandbox"].received_texts(user)]


def events(inbound: InboundMessage, stage: Stage | None = None) -> list[TraceEvent]:
    found = TraceEvent.objects.filter(trace_id=inbound.trace_id).order_by("id")
    return list(found.filter(stage=stage) if stage else found)


def add_shop_knowledge() -> dict[str, int]:
    """Two entries about 运费: asked alone, "运费" is the shipping-fee entry; about returns, the other."""
    return {
        "returns": KnowledgeEntryFactory(question="如何申请退货？", answer=RETURNS, tags=["退货"]).pk,
        "fee": KnowledgeEntryFactory(question="运费怎么算？", answer=SHIPPING_FEE, tags=["运费", "邮费"]).pk,
        "return_shipping": KnowledgeEntryFactory(question="退货的运费谁承担？", answer=RETURN_SHIPPING,
                                                 tags=["退货"]).pk,
    }


@pytest.fixture
def world(tenant_a, sandbox):
    received_by["sandbox"] = sandbox
    connection.set_schema_to_public()
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = WeComAppFactory()
        entries = add_shop_knowledge()
        FallbackScriptFactory(name="默认", text=FALLBACK, is_default=True)
        yield app, entries
        reset_breaker("alpha")


@pytest.fixture
def provider(world, sandbox):
    with schema_context("alpha"):
        return AIProviderFactory(base_url=sandbox.model_base_url, api_key="k-alpha", timeout_seconds=2,
                                 breaker_fail_max=2, breaker_reset_timeout_seconds=60)


def rewrite_calls(sandbox) -> list[dict]:
    return [call for call in sandbox.model_calls() if call["messages"][0]["content"].startswith("【追问改写】")]


def test_the_model_rewrites_a_follow_up_and_retrieval_finds_what_the_customer_means(world, provider, sandbox):
    app, entries = world
    with schema_context("alpha"):
        customer_says(app, "怎么退货？")
        assert run(app) == ["根据资料：" + RETURNS]
        follow_up = customer_says(app, "那运费呢？")
        assert run(app)[-1] == "根据资料：" + RETURN_SHIPPING

        [rewritten] = events(follow_up, Stage.REWRITTEN)
        assert rewritten.detail == {"original": "那运费呢？", "standalone": "退货的运费？", "by": "model"}
        assert events(follow_up, Stage.RETRIEVED)[0].detail["top_entry"] == entries["return_shipping"]
        rewrite_llm, answer_llm = events(follow_up, Stage.LLM_CALL)
        assert rewrite_llm.detail["purpose"] == "rewrite" and rewrite_llm.detail["outcome"] == "ok"
        assert "purpose" not in answer_llm.detail and answer_llm.detail["outcome"] == "ok"
        stages = [event.stage for event in events(follow_up)]
        assert stages.index("llm_call") < stages.index("rewritten") < stages.index("retrieved")
    [rewrite] = rewrite_calls(sandbox)  # the first message was no follow-up: one rewrite call in all
    assert rewrite["max_tokens"] == REWRITE_MAX_TOKENS
    assert rewrite["messages"][1]["content"] == f"客户：怎么退货？\n客服：根据资料：{RETURNS}\n客户：那运费呢？"
    # The answer prompt still carries the real message and the conversation, with the rewrite's knowledge.
    answer = sandbox.model_calls()[-1]
    assert [m["content"] for m in answer["messages"][1:]] == ["怎么退货？", "根据资料：" + RETURNS, "那运费呢？"]
    assert parse_knowledge(answer["messages"][0]["content"])[0].answer == RETURN_SHIPPING


def test_without_the_model_the_rule_rewrites_and_knowledge_answers(world):
    """Knowledge-only mode: "那运费呢？" as a first message gets the shipping-fee entry; after a return
    question the rule makes it "退货 运费", which finds the return-shipping entry."""
    app, entries = world
    with schema_context("alpha"):
        alone = customer_says(app, "那运费呢？", user="lisi")
        assert run(app, user="lisi") == [SHIPPING_FEE]
        assert events(alone, Stage.REWRITTEN) == []  # a first message leans on nothing
        assert events(alone, Stage.RETRIEVED)[0].detail["top_entry"] == entries["fee"]

        customer_says(app, "怎么退货？")
        follow_up = customer_says(app, "那运费呢？")
        assert run(app) == [RETURNS, RETURN_SHIPPING]
        [rewritten] = events(follow_up, Stage.REWRITTEN)
        assert rewritten.detail == {"original": "那运费呢？", "standalone": "退货 运费", "by": "rule"}
        assert events(follow_up, Stage.RETRIEVED)[0].detail["top_entry"] == entries["return_shipping"]
        assert events(follow_up, Stage.LLM_CALL) == []
        # The timeline (admin and API) reads the trace through its selector: the rewrite is in it, in order.
        answering = [step for step in message_trace(follow_up).steps
                     if step.stage in (Stage.REWRITTEN, Stage.RETRIEVED, Stage.PROCESSED)]
        assert [step.stage for step in answering] == [Stage.REWRITTEN, Stage.RETRIEVED, Stage.PROCESSED]
        assert answering[0].detail == rewritten.detail


def test_a_disabled_provider_is_not_asked_to_rewrite(world, provider, sandbox):
    app, entries = world
    with schema_context("alpha"):
        provider.enabled = False
        provider.save()
        customer_says(app, "怎么退货？")
        follow_up = customer_says(app, "那运费呢？")
        assert run(app) == [RETURNS, RETURN_SHIPPING]
        assert events(follow_up, Stage.REWRITTEN)[0].detail["by"] == "rule"
    assert sandbox.model_calls() == []


def test_an_open_breaker_means_the_rule_and_no_rewrite_call(world, provider, sandbox):
    app, entries = world
    with schema_context("alpha"):
        desk = DeskSettings.current()
        desk.max_consecutive_fallbacks = 10
        desk.save()
        sandbox.model_fail_next(provider.breaker_fail_max, status=503)
        for _ in range(provider.breaker_fail_max):  # another customer's answers fail: the breaker opens
            customer_says(app, "怎么开发票", user="lisi")
        run(app, user="lisi")
        assert breaker_state("alpha")["state"] == "open"
        calls_before = len(sandbox.model_calls())
        customer_says(app, "怎么退货？")
        follow_up = customer_says(app, "那运费呢？")
        run(app)
        [rewritten] = events(follow_up, Stage.REWRITTEN)
        assert rewritten.detail == {"original": "那运费呢？", "standalone": "退货 运费", "by": "rule"}
        assert events(follow_up, Stage.RETRIEVED)[0].detail["top_entry"] == entries["return_shipping"]
        assert [e.detail["outcome"] for e in events(follow_up, Stage.LLM_CALL)] == ["breaker_open"]  # the answer
    assert len(sandbox.model_calls()) == calls_before


@pytest.mark.parametrize("fault", [{"kind": "http_error", "status": 500}, {"kind": "delay", "delay": 1.5}],
                         ids=["error", "timeout"])
def test_a_failed_rewrite_falls_back_to_the_rule_and_the_answer_still_comes(world, sandbox, fault):
    app, entries = world
    with schema_context("alpha"):
        AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=0.5, breaker_fail_max=5)
        customer_says(app, "怎么退货？")
        run(app)
        sandbox.model_fail_next(1, **fault)  # the next call is the rewrite
        follow_up = customer_says(app, "那运费呢？")
        assert run(app)[-1] == "根据资料：" + RETURN_SHIPPING
        rewrite_llm, answer_llm = events(follow_up, Stage.LLM_CALL)
        assert (rewrite_llm.detail["purpose"], rewrite_llm.detail["outcome"]) == ("rewrite", "error")
        assert answer_llm.detail["outcome"] == "ok"
        assert events(follow_up, Stage.REWRITTEN)[0].detail["by"] == "rule"


def test_a_standalone_question_after_others_is_not_rewritten(world, provider, sandbox):
    app, entries = world
    with schema_context("alpha"):
        customer_says(app, "怎么退货？")
        question = customer_says(app, "运费怎么算？")
        assert run(app) == ["根据资料：" + RETURNS, "根据资料：" + SHIPPING_FEE]
        assert events(question, Stage.REWRITTEN) == []
    assert rewrite_calls(sandbox) == []


def test_no_context_turns_means_no_rewrite(world):
    app, entries = world
    with schema_context("alpha"):
        desk = DeskSettings.current()
        desk.context_turns = 0
        desk.save()
        customer_says(app, "怎么退货？")
        follow_up = customer_says(app, "那运费呢？")
        assert run(app) == [RETURNS, SHIPPING_FEE]
        assert events(follow_up, Stage.REWRITTEN) == []


def test_another_tenants_conversation_explains_nothing(world, tenant_b, sandbox):
    """Beta's customer (same member id, same app ids) asks "那运费呢？" right after alpha's asked about
    returns: beta's round sees only beta's conversation, so nothing is rewritten there."""
    app, entries = world
    with schema_context("alpha"):
        customer_says(app, "怎么退货？")
        run(app)
    connection.set_schema_to_public()
    with schema_context("beta"):
        beta_app = WeComAppFactory()
        beta_entries = add_shop_knowledge()
        FallbackScriptFactory(name="默认", text=FALLBACK, is_default=True)
        beta_follow_up = customer_says(beta_app, "那运费呢？")
        assert run(beta_app)[-1] == SHIPPING_FEE
        assert events(beta_follow_up, Stage.REWRITTEN) == []
        assert events(beta_follow_up, Stage.RETRIEVED)[0].detail["top_entry"] == beta_entries["fee"]
    with schema_context("alpha"):
        alpha_follow_up = customer_says(app, "那运费呢？")
        assert run(app)[-1] == RETURN_SHIPPING
        assert events(alpha_follow_up, Stage.REWRITTEN)[0].detail["standalone"] == "退货 运费"
