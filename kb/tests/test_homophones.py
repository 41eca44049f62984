"""Homophone typos (kb.homophones): a question typed with the right sound and the wrong characters is also
asked with the tenant's word, real words and spans that cut through one are left alone, the vocabulary is
the tenant's own and follows its entries."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from kb import homophones, services
from kb.embeddings.sync import embed_entries
from kb.homophones import Vocabulary, corrected
from kb.selectors import search_knowledge
from testing.factories import KnowledgeEntryFactory

WORDS = Vocabulary({"发票", "无理由", "运费险", "取消", "快递", "失败", "中心", "成功", "退款"})


@pytest.mark.parametrize(("question", "variant"), [
    ("发漂在哪里申请", "发票在哪里申请"),
    ("7天无里由支持吗", "7天无理由支持吗"),
    ("我下单的时候好像买了运费xian", "我下单的时候好像买了运费险"),  # pinyin left unconverted
    ("能不能把这单取销掉", "能不能把这单取消掉"),
    ("退宽多久到账", "退款多久到账"),
])
def test_a_homophone_typo_is_also_asked_with_the_tenants_word(question, variant):
    assert corrected(question, WORDS) == [variant]


@pytest.mark.parametrize("question", [
    "发票在哪里申请",  # already the tenant's word
    "我买的黑色发来的是白色",  # 是白 sounds like 失败 but cuts through 白色
    "发票能重新开一张吗",  # 重新 sounds like 中心 (read char by char) but is a word
    "写成公司的",  # 成公 sounds like 成功 but cuts through 公司
    "发的快吗",  # one character is never corrected
])
def test_real_words_and_spans_through_them_are_left_alone(question):
    assert corrected(question, WORDS) == []


@pytest.mark.django_db
def test_the_vocabulary_is_the_tenants_and_follows_its_entries(tenant_a, tenant_b,
                                                               django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        invoice = KnowledgeEntryFactory(question="怎么开发票？", answer="在订单详情页申请电子发票。", tags=["发票"])
        KnowledgeEntryFactory(question="退款多久到账？", answer="一到三个工作日。", tags=["退款"])
        found = search_knowledge("发漂在哪里申请")
        assert found and found[0].entry == invoice
        assert "发票" in found[0].matched_terms
    with schema_context("beta"):
        assert homophones.vocabulary().words == set()  # alpha's words are not beta's
        with django_capture_on_commit_callbacks(execute=True):  # the entries' version moves on commit of the
            shipping = KnowledgeEntryFactory(question="运费怎么算？", answer="满99包邮。", tags=["运费"])
            embed_entries(entry_ids=[shipping.pk])  # embed job (the entry's own commit with embeddings off)
        assert "运费" in homophones.vocabulary().words
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks(execute=True):
            services.set_entries_enabled(entry_ids=[invoice.pk], enabled=False)
        assert "发票" not in homophones.vocabulary().words  # rebuilt when the entries changed


@pytest.mark.django_db
def test_with_embeddings_off_a_new_entrys_words_are_known_on_commit(tenant_a, settings,
                                                                    django_capture_on_commit_callbacks):
    settings.KB_EMBEDDINGS = "off"  # no embed job will move the version
    with schema_context("alpha"):
        homophones.vocabulary()  # cached before the entry exists
        with django_capture_on_commit_callbacks(execute=True):
            KnowledgeEntryFactory(question="可以开增值税专用发票吗？", answer="可以。", tags=["专票"])
        assert "专票" in homophones.vocabulary().words
        assert corrected("能开专漂吗", homophones.vocabulary()) == ["能开专票吗"]
