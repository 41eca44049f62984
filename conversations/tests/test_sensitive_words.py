"""Sensitive words (conversations/services/sensitive_words.py): the platform's list and the tenant's, matched
ignoring case and full-width forms; a customer's are flagged (and masked if the tenant wants), an answer
containing one is replaced by a fallback, an agent's reply containing one is refused with the words named;
every hit is in the trace; one tenant's list is not another's."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.models import DeskSettings, Message, OutboundMessage, SensitiveWord
from conversations.services import sensitive_words
from conversations.services.answering.decisions import DEFAULT_FALLBACK_TEXT
from conversations.services.sensitive_words import Matcher
from conversations.vocabulary import Stage
from testing.factories import AIProviderFactory, FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.wecom import customer_says

from .test_menus import answer_and_deliver, trace

pytestmark = pytest.mark.django_db

SCRIPT = "抱歉，这个问题我暂时无法回答。"


def test_the_matcher_ignores_case_and_full_width_forms_and_masks_in_place():
    matcher = Matcher({"网赌", "vip群", "代开发票"})

    assert matcher.found("加ＶＩＰ群吗？还有网赌，网赌") == ["vip群", "网赌"]
    assert matcher.masked("加ＶＩＰ群吗？还有网赌") == "加****吗？还有**"
    assert matcher.found("可以开发票吗") == []  # 开发票 is not 代开发票
    assert Matcher(set()).found("网赌") == []


@pytest.fixture
def shop(tenant_a, sandbox, redis_client, django_capture_on_commit_callbacks):
    """Alpha answering from knowledge, with its own sensitive word 顺丰 on top of the platform's list."""
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = WeComAppFactory()
        KnowledgeEntryFactory(question="多久发货？", answer="下单后 48 小时内由顺丰发出。", tags=["发货"])
        FallbackScriptFactory(name="默认", text=SCRIPT, is_default=True)
        with django_capture_on_commit_callbacks(execute=True):
            sensitive_words.add_words(["顺丰"])
    redis_client.delete(f"alpha:wecom:token:{app.pk}")
    yield app
    redis_client.delete(f"alpha:wecom:token:{app.pk}")


def sent_texts(sandbox, user: str) -> list[str]:
    return [text.rstrip("\u200b") for text in sandbox.received_texts(user)]


def test_an_answer_with_a_sensitive_word_is_never_sent_the_customer_gets_the_script(shop, sandbox):
    with schema_context("alpha"):
        question = customer_says(shop, "多久发货", user="lisi")
        answer_and_deliver(shop, user="lisi")

        assert sent_texts(sandbox, "lisi") == [SCRIPT]
        events = trace(question)
        assert (Stage.SENSITIVE.value, {"words": ["顺丰"], "side": "reply", "author": "knowledge"}) in events
        fallback = next(detail for stage, detail in events if stage == Stage.FALLBACK)
        assert fallback["reason"] == "sensitive words in the reply: 顺丰"
        assert not Message.objects.filter(text__contains="顺丰").exists()


def test_the_models_answer_is_checked_too_and_a_script_with_the_word_gives_way_to_the_built_in_text(shop, sandbox):
    with schema_context("alpha"):
        AIProviderFactory(base_url=sandbox.model_base_url)
        FallbackScriptFactory(name="物流", keywords=["快递"], text="顺丰快递一般三天到。")
        question = customer_says(shop, "echo:快递用顺丰发", user="lisi")
        answer_and_deliver(shop, user="lisi")

        assert sent_texts(sandbox, "lisi") == [DEFAULT_FALLBACK_TEXT]
        events = trace(question)
        assert (Stage.SENSITIVE.value, {"words": ["顺丰"], "side": "reply", "author": "ai"}) in events
        assert (Stage.SENSITIVE.value, {"words": ["顺丰"], "side": "customer", "masked": False}) in events


def test_a_customers_sensitive_words_are_flagged_and_masked_when_the_tenant_says_so(shop, sandbox):
    with schema_context("alpha"):
        customer_says(shop, "你们这能网赌吗", user="lisi")
        answer_and_deliver(shop, user="lisi")
        DeskSettings.objects.filter(pk=DeskSettings.current().pk).update(mask_sensitive_input=True)
        masked = customer_says(shop, "网赌到底行不行", user="lisi")
        answer_and_deliver(shop, user="lisi")

        lines = list(Message.objects.filter(author=Message.Author.CUSTOMER).values_list("text", "sensitive_words"))
        assert lines == [("你们这能网赌吗", ["网赌"]), ("**到底行不行", ["网赌"])]  # 网赌: the platform's list
        assert masked.payload["Content"] == "网赌到底行不行"  # what WeCom delivered is kept
        assert (Stage.SENSITIVE.value, {"words": ["网赌"], "side": "customer", "masked": True}) in trace(masked)


def test_the_list_is_the_tenants_own_and_follows_the_admin(shop, tenant_b, admin_client, sandbox,
                                                           django_capture_on_commit_callbacks):
    with schema_context("beta"):
        assert sensitive_words.found("顺丰发货") == []  # alpha's word
        assert sensitive_words.found("网赌") == ["网赌"]  # the platform's
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/t/alpha/admin/conversations/sensitiveword/add/",
                                     {"words": "内部价\n 内部价 \n京东"})
    assert response.status_code == 302
    with schema_context("alpha"):
        assert sorted(SensitiveWord.objects.values_list("word", flat=True)) == ["京东", "内部价", "顺丰"]
        assert sensitive_words.found("京东的内部价") == ["京东", "内部价"]
        ids = list(SensitiveWord.objects.filter(word="京东").values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/t/alpha/admin/conversations/sensitiveword/",
                          {"action": "disable_words", "_selected_action": ids})
    with schema_context("alpha"):
        assert sensitive_words.found("京东的内部价") == ["内部价"]
    with schema_context("beta"):
        assert sensitive_words.found("京东的内部价") == []


def test_the_admin_refuses_a_word_too_long_and_changes_nothing(shop, admin_client):
    response = admin_client.post("/t/alpha/admin/conversations/sensitiveword/add/", {"words": "长" * 65})
    assert response.status_code == 200 and "longer than 64 characters" in response.content.decode()
    with schema_context("alpha"):
        assert list(SensitiveWord.objects.values_list("word", flat=True)) == ["顺丰"]
        assert not OutboundMessage.objects.exists()
