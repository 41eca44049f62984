"""Tenant synonym groups: the variants a question is asked in, their effect on the lexical ranking (tenant-scoped),
the rules of a group, and the admin that manages them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from django_tenants.utils import schema_context

from conversations.services.demo import DEMO_KNOWLEDGE
from kb import synonyms
from kb.models import Synonym
from kb.selectors import search_knowledge
from testing.factories import KnowledgeEntryFactory

pytestmark = pytest.mark.django_db

BASE = "/t/alpha/admin/kb/synonym/"
PARCEL = "我的快递三天了还没到，怎么回事"


# -- variants (no database) ----------------------------------------------------------------------------


def test_a_question_without_group_words_is_asked_as_it_is():
    assert synonyms.variants("怎么开发票？", [["快递", "物流"]]) == ["怎么开发票？"]
    assert synonyms.variants("怎么开发票？", []) == ["怎么开发票？"]


def test_each_other_word_of_the_group_takes_the_words_place():
    assert synonyms.variants("我的快递到哪了", [["物流", "快递", "包裹"]]) == [
        "我的快递到哪了", "我的物流到哪了", "我的包裹到哪了"]


def test_fewest_substitutions_first_and_at_most_max_variants():
    found = synonyms.variants("快递的发票", [["快递", "物流"], ["发票", "票据", "开票"]])
    assert found[0] == "快递的发票"
    assert found[1:4] == ["快递的票据", "快递的开票", "物流的发票"]  # one word replaced
    assert found[4:] == ["物流的票据", "物流的开票"]  # then both
    many = synonyms.variants("a快递b发票c退货", [["快递", *"甲乙丙丁"], ["发票", *"戊己庚辛"], ["退货", *"壬癸子丑"]])
    assert len(many) == synonyms.MAX_VARIANTS and len(set(many)) == len(many)


def test_latin_words_match_whole_words_only_and_case_folds():
    groups = [["vip", "会员"]]
    assert synonyms.variants("VIP有什么权益", groups)[1] == "会员有什么权益"
    assert synonyms.variants("vipshop是你们吗", groups) == ["vipshop是你们吗"]


def test_the_longest_word_of_a_group_wins():
    found = synonyms.variants("快递公司是哪家", [["快递", "快递公司", "物流公司"]])
    assert found[1:] == ["快递是哪家", "物流公司是哪家"]


# -- the rules of a group ------------------------------------------------------------------------------


@pytest.mark.parametrize(("words", "message"), [
    (["快递"], "at least 2"),
    (["快递", "快递", " 快递 "], "at least 2"),
    (["快递", "x" * 33], "longer than 32"),
    (["快递", "顺丰 快递"], "contains a space"),
    ([f"词{n}" for n in range(21)], "at most 20"),
])
def test_a_bad_group_is_refused_with_its_reason(tenant_a, words, message):
    with schema_context("alpha"), translation.override("en"), pytest.raises(ValidationError) as refused:
        synonyms.save_group(words=words)
    assert any(message in text for text in refused.value.messages)
    with schema_context("alpha"):
        assert not Synonym.objects.exists()


def test_a_word_belongs_to_one_group_only_in_a_tenant(tenant_a, tenant_b):
    with schema_context("alpha"):
        first = synonyms.save_group(words=["快递", "包裹"])
        with translation.override("en"), pytest.raises(ValidationError) as refused:
            synonyms.save_group(words=["物流", "包裹"])
        assert "“包裹” is already in the group “快递 包裹”" in refused.value.messages[0]
        synonyms.save_group(words=["快递", "包裹", "物流"], group=first)  # editing its own group is fine
        assert list(Synonym.objects.values_list("words", flat=True)) == [["快递", "包裹", "物流"]]
    with schema_context("beta"):  # another tenant's groups are its own
        synonyms.save_group(words=["包裹", "物流"])


def test_words_are_normalised_and_deduplicated(tenant_a):
    with schema_context("alpha"):
        group = synonyms.save_group(words=[" VIP ", "ｖｉｐ", "会员", ""])
        assert group.words == ["vip", "会员"]


# -- effect on the lexical ranking ---------------------------------------------------------------------


@pytest.fixture
def demo_kb(tenant_a, tenant_b, settings):
    settings.KB_EMBEDDINGS = "off"  # the lexical ranking alone: what synonyms change there
    entries = {}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            entries[schema] = {question: KnowledgeEntryFactory(question=question, answer=answer, tags=tags)
                               for question, answer, tags in DEMO_KNOWLEDGE}
    return entries


def best(schema: str, question: str):
    with schema_context(schema):
        return search_knowledge(question)[0]


def test_a_synonym_counts_like_the_word_and_only_in_its_tenant(demo_kb):
    shipping = "什么时候发货？"
    before = best("alpha", PARCEL)
    assert before.entry.question != shipping  # 快递 is in no entry: a stray word wins
    with schema_context("alpha"):
        synonyms.save_group(words=["物流", "快递", "包裹"])
    after = best("alpha", PARCEL)
    assert after.entry == demo_kb["alpha"][shipping]
    # as if the customer had written the entry's own word
    assert after.score == best("alpha", PARCEL.replace("快递", "物流")).score > before.score
    assert "物流" in after.matched_terms
    # tenant B has the same entries and no synonyms: its ranking is unchanged
    other = best("beta", PARCEL)
    assert (other.entry.question, other.score) == (before.entry.question, before.score)


def test_a_disabled_group_changes_nothing(demo_kb):
    before = best("alpha", PARCEL)
    with schema_context("alpha"):
        synonyms.save_group(words=["物流", "快递"], enabled=False)
    after = best("alpha", PARCEL)
    assert (after.entry, after.score) == (before.entry, before.score)


# -- the admin -----------------------------------------------------------------------------------------


def test_the_admin_lists_and_adds_a_group(admin_alpha):
    response = admin_alpha.post(BASE + "add/", {"words": "快递，包裹、物流 快件", "enabled": "on"})
    assert response.status_code == 302
    with schema_context("alpha"):
        assert list(Synonym.objects.values_list("words", "enabled")) == [(["快递", "包裹", "物流", "快件"], True)]
    page = admin_alpha.get(BASE)
    assert page.status_code == 200 and "快递 / 包裹 / 物流 / 快件" in page.text


def test_the_admin_refuses_a_bad_group_in_chinese_first(admin_alpha):
    with schema_context("alpha"):
        synonyms.save_group(words=["快递", "包裹"])
    response = admin_alpha.post(BASE + "add/", {"words": "包裹, 物流", "enabled": "on"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert "“包裹”已在同义词组“快递 包裹”中" in response.text
    response = admin_alpha.post(BASE + "add/", {"words": "物流", "enabled": "on"})
    assert response.status_code == 200 and "至少" in response.text
    with schema_context("alpha"):
        assert Synonym.objects.count() == 1


def test_the_admin_edits_a_group_keeping_its_own_words(admin_alpha):
    with schema_context("alpha"):
        group = synonyms.save_group(words=["快递", "包裹"])
    response = admin_alpha.post(f"{BASE}{group.pk}/change/", {"words": "快递 包裹 物流"})
    assert response.status_code == 302
    with schema_context("alpha"):
        group.refresh_from_db()
        assert (group.words, group.enabled) == (["快递", "包裹", "物流"], False)


def test_another_tenants_admin_does_not_see_the_group(admin_alpha, admin_beta):
    with schema_context("alpha"):
        group = synonyms.save_group(words=["快递", "包裹"])
    assert "快递 / 包裹" not in admin_beta.get("/t/beta/admin/kb/synonym/").text
    assert admin_beta.get(f"/t/beta/admin/kb/synonym/{group.pk}/change/").status_code in (302, 404)
