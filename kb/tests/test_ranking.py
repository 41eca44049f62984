"""Hybrid ranking with the real local model: paraphrases the lexical ranking got wrong are ranked right, a score
still means "how sure" (an unrelated question stays under the default threshold), a tenant without an embedder
(or whose model fails, or whose entries are not embedded yet) gets exactly the lexical ranking, synonyms reach
the vector side, and nothing crosses tenants."""

from __future__ import annotations

import numpy as np
import pytest
from django_tenants.utils import schema_context

from conversations.models import DeskSettings
from conversations.services.demo import DEMO_KNOWLEDGE, DEMO_SYNONYMS
from kb import ranking, synonyms
from kb.embeddings import EmbeddingError, register_embedder_resolver
from kb.embeddings.sync import embed_entries
from kb.models import KnowledgeEntry
from kb.selectors import lexical_search_many, search_knowledge, search_knowledge_many
from testing.factories import KnowledgeEntryFactory
from testing.kb_corpus import ENTRIES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_embedder")]

PARCEL = "我的快递三天了还没到，怎么回事"  # the examples
MONEY_BACK = "钱什么时候退回来"
# Out of scope and sharing no topic with the shop (near-domain ones such as 火车票怎么改签 are measured in
# bench/retrieval.py: one of 26 there still reaches 0.3 on a shared 票)
UNRELATED = ["今天北京天气怎么样", "给我讲个笑话吧", "你们招聘程序员吗", "附近有什么好吃的餐厅"]
# The entries of bench/data/retrieval_kb.json around a refund, where the issue saw 钱什么时候退回来 go wrong
REFUNDS = [
    ("退款多久能到账？",
     "退款审核通过后原路退回：支付宝、微信支付一般1-3个工作日到账，"
     "银行卡3-7个工作日，信用卡以银行入账为准。",
     ["退款", "到账时间"]),
    ("显示退款成功了，但是没有收到钱",
     "退款成功后钱会原路退回。如果超过7个工作日仍未看到，请查看支付宝或微信的「账单」、"
     "银行卡流水；仍查不到的话，请提供订单号，我们帮您查询退款流水号。",
     ["退款未到账", "退款成功没收到"]),
    ("怎么取消订单？",
     "未发货的订单可以在「我的订单」直接点击「取消订单」，款项会原路退回。"
     "已经发货的订单无法取消，您可以拒收，或签收后申请退货。",
     ["取消订单", "不想要了"]),
    ("退货以后优惠券会退回吗？",
     "整单退款时，未过期的优惠券会退回到您的账户；"
     "部分退款时按比例扣减优惠金额，优惠券不退回。",
     ["优惠券退回", "退券"]),
    ("怎么申请退货？退货流程是什么？",
     "在「我的订单」中找到订单，点击「申请售后」选择退货，审核通过后按页面地址寄回。",
     ["退货流程", "申请退货", "上门取件"]),
]
DEFAULT_THRESHOLD = DeskSettings._meta.get_field("knowledge_min_score").default


def make_kb(schema: str, rows, *, embed: bool = True) -> dict[str, KnowledgeEntry]:
    with schema_context(schema):
        entries = {question: KnowledgeEntryFactory(question=question, answer=answer, tags=tags)
                   for question, answer, tags in rows}
        if embed:
            embed_entries(entry_ids=[entry.pk for entry in entries.values()])
    return entries


@pytest.fixture
def demo_kb(tenant_a):
    return make_kb("alpha", DEMO_KNOWLEDGE)


@pytest.fixture
def shop_kb(tenant_a):
    return make_kb("alpha", ENTRIES.values())


def best(question: str, schema: str = "alpha"):
    with schema_context(schema):
        return search_knowledge(question)[0]


def lexical_best(question: str, schema: str = "alpha"):
    with schema_context(schema):
        return lexical_search_many([question])[0][0]


def test_the_parcel_paraphrase_finds_the_shipping_entry(demo_kb):
    shipping = demo_kb["什么时候发货？"]
    assert lexical_best(PARCEL).entry != shipping  # 快递 is in no entry: lexically a stray word wins
    found = best(PARCEL)
    assert found.entry == shipping
    assert found.cosine is not None and found.lexical is not None
    assert found.score == pytest.approx(ranking.fused_score(lexical=found.lexical, cosine=found.cosine,
                                                            model_id="local:use-m3"), abs=1e-3)


def test_with_the_demos_synonyms_the_parcel_question_is_answered_confidently(demo_kb):
    with schema_context("alpha"):
        for words in DEMO_SYNONYMS:
            synonyms.save_group(words=words)
    found = best(PARCEL)
    assert found.entry == demo_kb["什么时候发货？"]
    assert found.score >= DEFAULT_THRESHOLD  # knowledge-only mode answers it


def test_money_back_finds_the_refund_time_entry(tenant_a):
    entries = make_kb("alpha", REFUNDS)
    assert lexical_best(MONEY_BACK).entry != entries["退款多久能到账？"]
    assert best(MONEY_BACK).entry == entries["退款多久能到账？"]


def test_unrelated_questions_score_below_the_default_threshold(shop_kb):
    for question in UNRELATED:
        with schema_context("alpha"):
            matches = search_knowledge(question)
        assert not matches or matches[0].score < DEFAULT_THRESHOLD, (question, matches[0])


def test_scores_are_bounded_and_ordered_and_an_entrys_own_question_is_answered(shop_kb):
    with schema_context("alpha"):
        matches = search_knowledge("发票", limit=10)
    scores = [match.score for match in matches]
    assert scores == sorted(scores, reverse=True) and all(0 <= score <= 1 for score in scores)
    for question, _answer, _tags in ENTRIES.values():
        found = best(question)  # the fused scale: lexical 1.0 and a cosine of 0.75-0.85 with "question + tags"
        assert found.entry.question == question and found.score >= max(DEFAULT_THRESHOLD, 0.6), question


def test_a_vector_only_candidate_is_found_without_a_shared_word(tenant_a):
    entries = make_kb("alpha", [("如何申请退货？", "七天内在订单页申请。", ["退货"]),
                                ("怎么开发票？", "订单页申请开票。", ["发票"])])
    with schema_context("alpha"):
        matches = search_knowledge("这件衣服我不想要了能退吗")
    assert matches[0].entry == entries["如何申请退货？"]


# -- no embedder: the lexical ranking, exactly -----------------------------------------------------------


def same(matches_a, matches_b) -> bool:
    return [(m.entry.pk, m.score, m.matched_terms) for m in matches_a] == \
        [(m.entry.pk, m.score, m.matched_terms) for m in matches_b]


QUESTIONS = [PARCEL, MONEY_BACK, "发票", "买的衣服不合适能退吗", "今天天气怎么样", "？？"]


def test_embeddings_off_is_the_lexical_ranking(shop_kb, settings):
    settings.KB_EMBEDDINGS = "off"
    with schema_context("alpha"):
        assert all(same(a, b) for a, b in zip(search_knowledge_many(QUESTIONS, limit=5),
                                              lexical_search_many(QUESTIONS, limit=5), strict=True))
        assert all(m.cosine is None for matches in search_knowledge_many(QUESTIONS) for m in matches)


class FailingProvider:
    """A tenant's OpenAI-compatible provider that is down (outside our world)."""

    model_id = "openai:text-embedding-3-small"
    dims = 0

    def embed(self, texts):
        raise EmbeddingError("connection refused")


@pytest.fixture
def failing_provider():
    register_embedder_resolver(FailingProvider)
    yield
    register_embedder_resolver(None)


def test_a_failing_model_is_the_lexical_ranking(shop_kb, failing_provider):
    with schema_context("alpha"):
        assert all(same(a, b) for a, b in zip(search_knowledge_many(QUESTIONS, limit=5),
                                              lexical_search_many(QUESTIONS, limit=5), strict=True))


def test_entries_not_embedded_yet_keep_their_lexical_score(tenant_a):
    make_kb("alpha", ENTRIES.values(), embed=False)
    with schema_context("alpha"):
        assert all(same(a, b) for a, b in zip(search_knowledge_many(QUESTIONS, limit=5),
                                              lexical_search_many(QUESTIONS, limit=5), strict=True))


# -- synonyms on the vector side, tenants ----------------------------------------------------------------


def test_synonyms_reach_the_vector_side(demo_kb, local_embedder):
    with schema_context("alpha"):
        synonyms.save_group(words=["物流", "快递", "包裹"])
        (vectors,) = ranking.embed_questions([synonyms.variants(PARCEL, synonyms.enabled_groups())])
    alone, *others = local_embedder.embed(synonyms.variants(PARCEL, [["物流", "快递", "包裹"]]))
    mean = np.mean([alone, *others], axis=0)
    assert np.allclose(vectors.vector, mean / np.linalg.norm(mean), atol=1e-5)
    assert best(PARCEL).entry == demo_kb["什么时候发货？"]


def test_another_tenants_entries_and_vectors_are_never_candidates(demo_kb, tenant_b):
    make_kb("beta", [("我的快递三天了还没到怎么办？", "请联系快递公司。", ["快递"])])
    with schema_context("alpha"):
        found = search_knowledge(PARCEL, limit=50)
        assert {m.entry.pk for m in found} <= set(KnowledgeEntry.objects.values_list("pk", flat=True))
        assert all(m.entry.question != "我的快递三天了还没到怎么办？" for m in found)
    assert best(PARCEL, "beta").score >= 0.8  # beta's own entry, for beta


def test_the_try_page_shows_the_lexical_vector_and_fused_score_of_each_result(demo_kb, admin_client):
    found = best(PARCEL)

    page = admin_client.get("/t/alpha/admin/kb/knowledgeentry/try/", {"q": PARCEL}).content.decode()

    first = page[page.index('<tbody>'):]
    first = first[:first.index("</tr>")]
    assert f'<td class="score">{found.score:.3f}</td>' in first
    assert f'<td class="lexical">{found.lexical:.3f}</td>' in first
    assert f'<td class="vector">{found.cosine:.3f}</td>' in first
    assert "什么时候发货？" in first
