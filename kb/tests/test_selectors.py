"""Retrieval: realistic customer questions find the right entry first, in the tenant's schema only."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from kb import selectors, services
from kb.models import KnowledgeEntry
from kb.segmentation import han_characters, segment, unique
from kb.selectors import search_knowledge, search_knowledge_many
from testing.factories import KnowledgeEntryFactory
from testing.kb_corpus import ENTRIES, QUESTIONS

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_kb(tenant_a) -> dict[str, KnowledgeEntry]:
    with schema_context("alpha"):
        return {key: KnowledgeEntryFactory(question=q, answer=a, tags=tags) for key, (q, a, tags) in ENTRIES.items()}


def search(schema: str, query: str, **kwargs):
    with schema_context(schema):
        return search_knowledge(query, **kwargs)


@pytest.mark.parametrize(("question", "expected"), QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_customer_question_finds_the_right_entry_first(shop_kb, question, expected):
    matches = search("alpha", question)
    print([(m.entry.question, m.score, m.matched_terms) for m in matches])
    assert matches, "nothing found"
    assert matches[0].entry == shop_kb[expected]
    assert 0 < matches[0].score <= 1
    assert matches[0].matched_terms


def test_an_entrys_own_question_finds_it_with_a_full_score(shop_kb):
    for key, (question, _answer, _tags) in ENTRIES.items():
        best = search("alpha", question)[0]
        assert (best.entry, best.score >= 0.99) == (shop_kb[key], True), question


def test_paraphrases_above_the_suggested_threshold_are_never_wrong(shop_kb):
    """The score's documented use: a knowledge-only threshold of 0.3 (kb.selectors)."""
    confident = [(question, expected) for question, expected in QUESTIONS
                 if search("alpha", question)[0].score >= 0.3]
    assert len(confident) >= 10
    for question, expected in confident:
        assert [m.entry for m in search("alpha", question) if m.score >= 0.3][0] == shop_kb[expected]


def test_scores_are_ordered_and_bounded(shop_kb):
    matches = search("alpha", "发票", limit=10)
    scores = [match.score for match in matches]
    assert scores == sorted(scores, reverse=True) and all(0 < score <= 1 for score in scores)
    # the word is in the entry's question and tags: a full score
    assert matches[0].entry == shop_kb["invoice"] and matches[0].score == 1.0
    assert matches[0].matched_terms == ["发票", "发", "票"]  # words first, then their characters


def test_limit_and_nothing_to_search(shop_kb):
    assert len(search("alpha", "订单", limit=2)) == 2
    assert search("alpha", "怎么了吗？？") == []  # only stop words and punctuation
    assert search("alpha", "恐龙") == [] and search("alpha", "dinosaur") == []  # nothing in common


def test_tags_are_indexed(shop_kb):
    assert search("alpha", "七天无理由")[0].entry == shop_kb["return"]


def test_disabled_entries_are_never_returned(shop_kb):
    with schema_context("alpha"):
        services.set_entries_enabled(entry_ids=[shop_kb["invoice"].pk, shop_kb["vat"].pk], enabled=False)
    found = {match.entry.pk for match in search("alpha", "我要报销，需要发票", limit=50)}
    assert found and shop_kb["invoice"].pk not in found and shop_kb["vat"].pk not in found


def test_an_edited_entry_is_found_by_its_new_words(shop_kb):
    with schema_context("alpha"):
        entry = shop_kb["coupon"]
        services.update_entry(entry=entry, question="红包怎么使用？", answer=entry.answer, tags=["红包"],
                              enabled=True)
    assert search("alpha", "红包")[0].entry == shop_kb["coupon"]


def test_an_entry_of_alpha_is_never_found_in_beta(shop_kb, tenant_b):
    with schema_context("beta"):
        KnowledgeEntryFactory(question="你们的营业执照在哪里看？", answer="在店铺首页底部“资质证照”里。")
    assert search("beta", "买的衣服不合适能退吗") == []
    beta_matches = search("beta", "营业执照")
    assert [match.entry.question for match in beta_matches] == ["你们的营业执照在哪里看？"]
    assert "你们的营业执照在哪里看？" not in {match.entry.question for match in search("alpha", "营业执照", limit=50)}


def test_searching_many_questions_at_once_gives_each_its_own_ranking(shop_kb):
    questions = [question for question, _ in QUESTIONS[:6]]
    questions.insert(1, "")
    with schema_context("alpha"):
        together = search_knowledge_many(questions, limit=3)
        alone = [search_knowledge(question, limit=3) for question in questions]
    assert [[(m.entry.pk, m.score, m.matched_terms) for m in found] for found in together] == \
        [[(m.entry.pk, m.score, m.matched_terms) for m in found] for found in alone]
    assert together[1] == [] and all(together[i] for i in (0, 2, 3))


def _exhaustive(query: str, limit: int) -> list[tuple[int, float]]:
    """The ranking over every entry sharing a word or character with the question (step 2 alone)."""
    words = unique(segment(query).terms)
    chars = [char for char in unique(han_characters(words)) if char not in words]
    asked = selectors._Asked(number=0, words=words, chars=chars, common=chars)
    return [(m.entry.pk, m.score) for m in selectors._ranked([asked], limit=limit, exhaustive=True)[0]]


def test_common_characters_do_not_change_the_ranking_only_its_cost(shop_kb):
    """Entries sharing only common characters with the question (in their answers) are left out of the
    first step; the result is the same as ranking every entry that shares anything (module docstring)."""
    with schema_context("alpha"):
        # 60 entries whose answers repeat the characters of 商品 and 时间 (common: in > 5% of the entries)
        for number in range(60):
            KnowledgeEntryFactory(question=f"型号{number}的参数", answer=f"详见商品页，保修时间{number}个月。")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE kb_knowledgeentry")  # the statistics that tell common characters
        selectors._term_stats.clear()
        shares = selectors._lexeme_shares()
        assert shares["商"] > selectors.COMMON_CHAR_SHARE and shares["间"] > selectors.COMMON_CHAR_SHARE
        questions = [question for question, _ in QUESTIONS] + ["进口商品清关要多长时间", "商品什么时间发货"]
        asked_again, with_common = [], []
        original = selectors._ranked

        def counting(asked, *, limit, exhaustive):
            asked_again.extend(question.number for question in asked if exhaustive)
            with_common.extend(question.number for question in asked if question.common and not exhaustive)
            return original(asked, limit=limit, exhaustive=exhaustive)

        for limit in (3, 10):
            for question in questions:
                selectors._ranked = counting
                try:
                    found = [(m.entry.pk, m.score) for m in search_knowledge(question, limit=limit)]
                finally:
                    selectors._ranked = original
                assert found == _exhaustive(question, limit), question
    # many questions had common characters, and the first step alone answered most of those
    assert len(with_common) >= 10 and len(asked_again) < len(with_common) // 2
    selectors._term_stats.clear()
