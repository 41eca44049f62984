"""Optional reranking of retrieved knowledge by the tenant's model (conversations/services/answering/rerank.py):
the reply parser, then rounds in-process against the sandbox's fake model (which orders candidates by the
characters they share with the question)."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.ai.prompt import parse_ranking
from conversations.models import Contact, TraceEvent
from conversations.services.answering import answer_contact
from conversations.services.outbound import deliver_for_contact
from conversations.vocabulary import Stage
from testing.factories import AIProviderFactory, FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.wecom import customer_says
from wecom_sandbox.prompt_contract import parse_knowledge

pytestmark = pytest.mark.django_db
USER = "zhangsan"
# Lexically the tagged entry wins (both words in its tags); by the characters of the entries' questions,
# which is all the fake model sees, the other one does.
TAGGED = "寄回商品的费用由商家承担。"
WORDED = "收到商品七天内可申请退货。"


@pytest.mark.parametrize(("reply", "count", "order"), [
    ("3,1,2", 3, [2, 0, 1]),
    ("2", 3, [1, 0, 2]),  # the ones left out follow in their retrieved order
    ("最相关的是 [2]，然后是 5 和 2、1", 3, [1, 0, 2]),  # out of range and repeated numbers are ignored
    ("1, 2", 2, [0, 1]),
    ("都不相关", 3, None),
    ("0,4", 3, None),
    ("", 2, None),
])
def test_a_rerank_reply_becomes_an_order_of_all_candidates(reply, count, order):
    assert parse_ranking(reply, count=count) == order


@pytest.fixture
def world(tenant_a, sandbox):
    connection.set_schema_to_public()
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = WeComAppFactory()
        entries = {
            "tagged": KnowledgeEntryFactory(question="寄回商品要付钱吗？", answer=TAGGED, tags=["退货运费"]).pk,
            "worded": KnowledgeEntryFactory(question="退货需要什么条件？", answer=WORDED).pk,
        }
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
        AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=2, breaker_fail_max=3)
        yield app, entries
        reset_breaker("alpha")


def ask(app, sandbox, text: str):
    inbound = customer_says(app, text)
    contact = Contact.objects.get(app=app, external_id=USER)
    assert answer_contact(contact) is None
    assert deliver_for_contact(contact.pk) is None
    events = list(TraceEvent.objects.filter(trace_id=inbound.trace_id).order_by("id"))
    return [t.rstrip("\u200b") for t in sandbox.received_texts(USER)], events


def test_reranking_is_off_unless_switched_on(world, sandbox):
    app, entries = world
    with schema_context("alpha"):
        received, events = ask(app, sandbox, "退货运费")
    assert received == ["根据资料：" + TAGGED]
    assert [e.detail.get("purpose") for e in events if e.stage == Stage.LLM_CALL] == [None]
    assert len(sandbox.model_calls()) == 1


def test_the_model_reorders_the_knowledge_it_is_shown_and_the_scores_stay(world, sandbox, settings):
    settings.ANSWER_RERANK = True
    app, entries = world
    with schema_context("alpha"):
        received, events = ask(app, sandbox, "退货运费")
    assert received == ["根据资料：" + WORDED]
    [retrieved] = [e for e in events if e.stage == Stage.RETRIEVED]
    assert retrieved.detail["top_entry"] == entries["tagged"]  # retrieval's order and score, as found
    rerank_call, answer_call = [e for e in events if e.stage == Stage.LLM_CALL]
    assert rerank_call.detail["purpose"] == "rerank" and rerank_call.detail["outcome"] == "ok"
    assert rerank_call.detail["order"] == [entries["worded"], entries["tagged"]]
    assert "purpose" not in answer_call.detail
    rerank_request, answer_request = sandbox.model_calls()
    assert rerank_request["messages"][1]["content"] == "问题：退货运费\n[1] 寄回商品要付钱吗？\n[2] 退货需要什么条件？"
    assert rerank_request["reply"] == "2,1"
    assert [e.answer for e in parse_knowledge(answer_request["messages"][0]["content"])] == [WORDED, TAGGED]


def test_a_failed_rerank_keeps_the_retrieved_order(world, sandbox, settings):
    settings.ANSWER_RERANK = True
    app, entries = world
    sandbox.model_fail_next(1, status=500)  # the rerank call
    with schema_context("alpha"):
        received, events = ask(app, sandbox, "退货运费")
    assert received == ["根据资料：" + TAGGED]
    rerank_call, answer_call = [e for e in events if e.stage == Stage.LLM_CALL]
    assert (rerank_call.detail["purpose"], rerank_call.detail["outcome"]) == ("rerank", "error")
    assert "order" not in rerank_call.detail and answer_call.detail["outcome"] == "ok"


def test_one_match_is_not_reranked(world, sandbox, settings):
    settings.ANSWER_RERANK = True
    app, entries = world
    with schema_context("alpha"):
        received, events = ask(app, sandbox, "付钱")
    assert received == ["根据资料：" + TAGGED]
    assert [e.detail["hits"] for e in events if e.stage == Stage.RETRIEVED] == [1]
    assert [e.detail.get("purpose") for e in events if e.stage == Stage.LLM_CALL] == [None]
