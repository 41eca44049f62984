"""Knowledge gaps (conversations.services.knowledge_gaps): which answered messages count as unanswered,
how they group, the admin's list, the prefilled add form, resolve on save, dismiss, and tenant isolation."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Contact, DeskSettings, InboundMessage, KnowledgeGap, KnowledgeGapMessage, TraceEvent
from conversations.schedule import collect_knowledge_gaps as scheduled_collection
from conversations.services.answering import answer_contact
from conversations.services.knowledge_gaps import SETTLE_SECONDS, collect_knowledge_gaps, entry_draft
from conversations.vocabulary import HandoffReason, ModelOutcome, Outcome, Stage
from kb.models import KnowledgeEntry
from testing.accounts import staff_client
from testing.broker import queued_jobs
from testing.factories import (
    FallbackScriptFactory,
    InboundMessageFactory,
    KnowledgeEntryFactory,
    TraceEventFactory,
    WeComAppFactory,
)
from testing.wecom import customer_says

pytestmark = pytest.mark.django_db
Status = KnowledgeGap.Status
GAPS = "/t/alpha/admin/conversations/knowledgegap/"
KB_ADD = "/t/alpha/admin/kb/knowledgeentry/add/"

# Three questions customers asked in different words, and two unrelated ones.
LATE_PARCEL = ["我的快递三天了还没到，怎么回事", "快递怎么还没到", "快递三天还没到", "我的快递一直没到啊"]
HUABEI = ["你们支持花呗分期吗", "可以用花呗分期付款吗", "花呗分期可以吗"]
ADDRESS = ["怎么修改收货地址", "收货地址填错了能改吗"]
UNRELATED = ["门店在哪里", "发票怎么开"]


@pytest.fixture
def lexical(settings):
    """No embedder: grouping by words alone (a tenant without any embedding provider)."""
    settings.KB_EMBEDDINGS = "off"


def processed(text: str, *, outcome: Outcome = Outcome.FALLBACK, top_score: float | None = 0.1,
              handoff: HandoffReason | None = None, model: ModelOutcome | None = None, menu: bool = False,
              msg_type: str = "text", standalone: str | None = None,
              age_seconds: float = SETTLE_SECONDS + 60) -> InboundMessage:
    """A customer message as the answer pipeline leaves it: its trace events, as rounds.py writes them."""
    at = timezone.now() - timedelta(seconds=age_seconds)
    inbound = InboundMessageFactory(content=text, msg_type=msg_type, status=InboundMessage.Status.PROCESSED)
    InboundMessage.objects.filter(pk=inbound.pk).update(received_at=at)
    retrieved = {"menu_id": "m1", "top_entry": 1, "hits": 1, "top_score": None} if menu else {
        "hits": 0 if top_score is None else 1, "top_score": top_score, "top_entry": None, "ms": 1.0}
    events = []
    if standalone is not None:
        events.append((Stage.LLM_CALL, {"purpose": "rewrite", "outcome": ModelOutcome.OK.value}))
        events.append((Stage.REWRITTEN, {"original": text, "standalone": standalone, "by": "model"}))
    events.append((Stage.RETRIEVED, retrieved))
    if model is not None:
        events.append((Stage.LLM_CALL, {"outcome": model.value}))
    if outcome == Outcome.FALLBACK:
        events.append((Stage.FALLBACK, {"reason": "no knowledge entry above the threshold", "script": None}))
    if handoff is not None:
        events.append((Stage.HANDOFF, {"reason": handoff.value, "ticket": 1}))
    events.append((Stage.PROCESSED, {"outcome": outcome.value}))
    for stage, detail in events:
        TraceEventFactory(inbound=inbound, stage=stage, detail=detail, created_at=at)
    return inbound


def gaps() -> dict[str, tuple[int, set[str]]]:
    """Each group's question: its count and the texts of its messages."""
    return {gap.question: (gap.message_count, set(gap.messages.values_list("text", flat=True)))
            for gap in KnowledgeGap.objects.all()}


# --- which messages count -----------------------------------------------------------------------------

def test_fallbacks_handoffs_for_no_answer_and_low_scores_count_and_the_rest_do_not(tenant_a, lexical):
    with schema_context("alpha"):
        counted = {
            "花呗分期可以吗": processed("花呗分期可以吗"),
            "积分能换手机吗": processed("积分能换手机吗", outcome=Outcome.HANDOFF,
                                  handoff=HandoffReason.AI_CANNOT_ANSWER),
            "发票抬头写错了": processed("发票抬头写错了", outcome=Outcome.HANDOFF,
                                  handoff=HandoffReason.REPEATED_FALLBACKS),
            "门店几点关门": processed("门店几点关门", outcome=Outcome.AI, top_score=0.12, model=ModelOutcome.OK),
            "能开专票吗": processed("能开专票吗", outcome=Outcome.AI, top_score=None, model=ModelOutcome.OK),
        }
        processed("转人工", outcome=Outcome.HANDOFF, handoff=HandoffReason.CUSTOMER_ASKED)
        processed("退货怎么退", outcome=Outcome.KNOWLEDGE, top_score=0.9)
        processed("运费多少", outcome=Outcome.AI, top_score=0.8, model=ModelOutcome.OK)
        processed("优惠券怎么用", top_score=0.8, model=ModelOutcome.ERROR)  # the model was down, not the knowledge
        processed("菜单里的退货", outcome=Outcome.KNOWLEDGE, menu=True)
        processed("[图片]", outcome=Outcome.HANDOFF, handoff=HandoffReason.NON_TEXT, msg_type="image")

        result = collect_knowledge_gaps()

        assert (result.scanned, result.unanswered, result.new_groups) == (11, 5, 5)
        members = {m.text: m for m in KnowledgeGapMessage.objects.all()}
        assert set(members) == set(counted)
        assert {text: members[text].reason for text in counted} == {
            "花呗分期可以吗": "fallback", "积分能换手机吗": "no_answer", "发票抬头写错了": "no_answer",
            "门店几点关门": "low_score", "能开专票吗": "low_score"}
        assert members["门店几点关门"].top_score == 0.12


def test_a_rewritten_follow_up_counts_as_its_standalone_question(tenant_a, lexical):
    with schema_context("alpha"):
        processed("那运费呢？", standalone="退货运费谁出", model=ModelOutcome.ERROR)
        processed("退货的运费谁出？")
        collect_knowledge_gaps()
        assert gaps() == {"退货运费谁出": (2, {"退货运费谁出", "退货的运费谁出？"})}


def test_the_tenants_threshold_decides_what_is_a_low_score(tenant_a, lexical):
    with schema_context("alpha"):
        DeskSettings.objects.update_or_create(pk=1, defaults={"knowledge_min_score": 0.5})
        processed("运费谁出", outcome=Outcome.AI, top_score=0.45, model=ModelOutcome.OK)
        processed("几天发货", outcome=Outcome.AI, top_score=0.5, model=ModelOutcome.OK)
        collect_knowledge_gaps()
        assert list(KnowledgeGap.objects.values_list("question", flat=True)) == ["运费谁出"]


def test_a_fallback_from_the_real_answer_pipeline_becomes_a_gap(tenant_a, sandbox, lexical):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="如何申请退货？", answer="七天内可在订单页申请无理由退货。", tags=["退货"])
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
        app = WeComAppFactory()
        for text in ("如何申请退货？", "你们支持花呗分期吗"):
            customer_says(app, text)
            assert answer_contact(Contact.objects.get(external_id="zhangsan")) is None
        TraceEvent.objects.update(created_at=timezone.now() - timedelta(seconds=SETTLE_SECONDS + 1))

        collect_knowledge_gaps()

        assert gaps() == {"你们支持花呗分期吗": (1, {"你们支持花呗分期吗"})}


# --- grouping -----------------------------------------------------------------------------------------

def test_similar_questions_group_together_and_unrelated_ones_apart_with_exact_counts(tenant_a, lexical):
    with schema_context("alpha"):
        for text in [*LATE_PARCEL, *HUABEI, *ADDRESS, *UNRELATED, "快递怎么还没到"]:  # one wording twice
            processed(text)

        collect_knowledge_gaps()

        found = gaps()
        assert found == {
            "快递怎么还没到": (5, set(LATE_PARCEL)),
            "你们支持花呗分期吗": (3, set(HUABEI)),
            "怎么修改收货地址": (2, set(ADDRESS)),
            "门店在哪里": (1, {"门店在哪里"}),
            "发票怎么开": (1, {"发票怎么开"}),
        }
        parcel = KnowledgeGap.objects.get(question="快递怎么还没到")
        assert [example["text"] for example in parcel.examples] == LATE_PARCEL  # each wording once
        seen = sorted(InboundMessage.objects.filter(content__in=LATE_PARCEL).values_list("received_at", flat=True))
        assert (parcel.first_seen_at, parcel.last_seen_at) == (seen[0], seen[-1])


def test_collection_is_incremental_and_a_second_run_adds_nothing(tenant_a, lexical):
    with schema_context("alpha"):
        processed(LATE_PARCEL[0])
        collect_knowledge_gaps()
        processed(LATE_PARCEL[1])
        recent = processed(LATE_PARCEL[2], age_seconds=1)  # its round may still have neighbours committing

        collect_knowledge_gaps()
        collect_knowledge_gaps()  # reads the recent one again, and adds it no second time

        assert gaps() == {LATE_PARCEL[0]: (3, set(LATE_PARCEL[:3]))}
        assert KnowledgeGapMessage.objects.filter(inbound=recent).count() == 1


def test_grouping_by_meaning_joins_paraphrases_that_share_no_word(tenant_a, settings):
    settings.KB_EMBEDDINGS = "on"  # the built-in model
    with schema_context("alpha"):
        for text in ("钱什么时候退回来", "退款多久能到账", "你们支持花呗分期吗"):
            processed(text)

        collect_knowledge_gaps()

        assert gaps() == {"钱什么时候退回来": (2, {"钱什么时候退回来", "退款多久能到账"}),
                          "你们支持花呗分期吗": (1, {"你们支持花呗分期吗"})}
        gap = KnowledgeGap.objects.get(question="钱什么时候退回来")
        assert gap.vector_model.startswith("local:") and len(bytes(gap.vector)) > 0


def test_dismissed_groups_absorb_their_look_alikes_and_resolved_ones_do_not(tenant_a, lexical):
    with schema_context("alpha"):
        processed("你好")
        processed("快递怎么还没到")
        collect_knowledge_gaps()
        greeting = KnowledgeGap.objects.get(question="你好")
        parcel = KnowledgeGap.objects.get(question="快递怎么还没到")
        KnowledgeGap.objects.filter(pk=greeting.pk).update(status=Status.DISMISSED)
        KnowledgeGap.objects.filter(pk=parcel.pk).update(status=Status.RESOLVED)
        processed("你好啊")
        processed("快递三天还没到")

        collect_knowledge_gaps()

        greeting.refresh_from_db()
        assert (greeting.status, greeting.message_count) == (Status.DISMISSED, 2)
        assert KnowledgeGap.objects.filter(status=Status.OPEN).get().question == "快递三天还没到"


def test_the_scheduler_enqueues_a_collection_only_when_messages_were_processed(tenant_a, lexical,
                                                                                django_capture_on_commit_callbacks):
    def collections() -> int:
        return len(queued_jobs("ai", actor_name="conversations.collect_knowledge_gaps"))

    with schema_context("alpha"):
        before = collections()
        with django_capture_on_commit_callbacks(execute=True):
            scheduled_collection()
        assert collections() == before
        processed("快递怎么还没到")
        with django_capture_on_commit_callbacks(execute=True):
            scheduled_collection()
        assert collections() == before + 1


# --- the admin ---------------------------------------------------------------------------------------

@pytest.fixture
def admin_alpha(tenant_a):
    return staff_client("alpha")


def test_the_admin_lists_open_groups_with_counts_and_examples(admin_alpha, lexical):
    with schema_context("alpha"):
        for text in [*LATE_PARCEL, "你好"]:
            processed(text)
        collect_knowledge_gaps()
        KnowledgeGap.objects.filter(question="你好").update(status=Status.DISMISSED)
        parcel = KnowledgeGap.objects.get(question=LATE_PARCEL[0])

    page = admin_alpha.get(GAPS).text

    assert LATE_PARCEL[1] in page and "你好" not in page  # open only, by default
    assert f"{GAPS}{parcel.pk}/add-entry/" in page
    assert "你好" in admin_alpha.get(GAPS + "?status=dismissed").text
    assert admin_alpha.get(GAPS + "?status=nonsense").status_code == 200


def test_one_click_opens_the_add_form_filled_in_and_saving_resolves_the_group(admin_alpha, lexical):
    with schema_context("alpha"):
        for text in LATE_PARCEL:
            processed(text)
        collect_knowledge_gaps()
        gap = KnowledgeGap.objects.get()
        draft = entry_draft(gap)
    assert draft.question == LATE_PARCEL[0] and draft.tags[0] == "快递" and len(draft.tags) == 3

    redirect = admin_alpha.get(f"{GAPS}{gap.pk}/add-entry/")
    assert redirect.status_code == 302
    target = urlsplit(redirect["Location"])
    assert target.path == KB_ADD
    query = parse_qs(target.query)
    assert query == {"question": [draft.question], "tags": [", ".join(draft.tags)], "origin": [f"gap:{gap.pk}"]}
    form = admin_alpha.get(redirect["Location"])
    assert form.context["adminform"].form.initial["question"] == draft.question
    assert form.context["adminform"].form.initial["tags"] == ", ".join(draft.tags)

    saved = admin_alpha.post(redirect["Location"], {"question": "快递几天能到？", "answer": "一般下单后三天内送达。",
                                                    "tags": "快递, 物流", "enabled": "on"})

    assert saved.status_code == 302
    with schema_context("alpha"):
        entry = KnowledgeEntry.objects.get()
        gap.refresh_from_db()
        assert (gap.status, gap.entry_id) == (Status.RESOLVED, entry.pk) and gap.resolved_at is not None
    page = admin_alpha.get(GAPS + "?status=resolved").text
    assert f"/t/alpha/admin/kb/knowledgeentry/{entry.pk}/change/" in page


def test_an_entry_added_without_an_origin_or_with_a_bad_one_resolves_nothing(admin_alpha, lexical):
    with schema_context("alpha"):
        processed("快递怎么还没到")
        collect_knowledge_gaps()
        gap = KnowledgeGap.objects.get()
    for number, origin in enumerate(["", "gap:", "gap:x1", f"other:{gap.pk}", "gap:999999"]):
        response = admin_alpha.post(f"{KB_ADD}?origin={origin}", {"question": f"问题{number}", "answer": "答案",
                                                                "enabled": "on"})
        assert response.status_code == 302
    with schema_context("alpha"):
        gap.refresh_from_db()
        assert gap.status == Status.OPEN and gap.entry_id is None and KnowledgeEntry.objects.count() == 5


def test_dismiss_and_reopen_actions(admin_alpha, lexical):
    with schema_context("alpha"):
        processed("你好")
        processed("快递怎么还没到")
        collect_knowledge_gaps()
        greeting = KnowledgeGap.objects.get(question="你好")
    response = admin_alpha.post(GAPS, {"action": "dismiss", "_selected_action": [greeting.pk]})
    assert response.status_code == 302
    with schema_context("alpha"):
        assert dict(KnowledgeGap.objects.values_list("question", "status")) == {
            "你好": Status.DISMISSED, "快递怎么还没到": Status.OPEN}
    admin_alpha.post(GAPS + "?status=dismissed", {"action": "reopen", "_selected_action": [greeting.pk]})
    with schema_context("alpha"):
        assert KnowledgeGap.objects.get(pk=greeting.pk).status == Status.OPEN


def test_staff_without_permission_cannot_open_the_add_form_link(tenant_a, lexical):
    with schema_context("alpha"):
        processed("快递怎么还没到")
        collect_knowledge_gaps()
        gap = KnowledgeGap.objects.get()
    client = staff_client("alpha", superuser=False)
    assert client.get(f"{GAPS}{gap.pk}/add-entry/").status_code == 403
    assert staff_client("alpha").get(f"{GAPS}999999/add-entry/").status_code == 404


# --- isolation ---------------------------------------------------------------------------------------

def test_a_second_tenants_gaps_are_invisible_and_untouched(tenant_a, tenant_b, admin_alpha, lexical):
    with schema_context("beta"):
        processed("快递怎么还没到")
        processed("快递三天还没到")
        collect_knowledge_gaps()
        beta_gap = KnowledgeGap.objects.get()
        beta_state = (beta_gap.question, beta_gap.message_count, beta_gap.status, beta_gap.last_seen_at)
    with schema_context("alpha"):
        processed("我的快递一直没到啊")
        collect_knowledge_gaps()
        alpha_gap = KnowledgeGap.objects.get()
        assert alpha_gap.message_count == 1

    assert "快递三天还没到" not in admin_alpha.get(GAPS).text
    admin_alpha.post(f"{KB_ADD}?origin=gap:{beta_gap.pk}", {"question": "快递几天到", "answer": "三天。",
                                                            "enabled": "on"})
    admin_alpha.post(GAPS, {"action": "dismiss", "_selected_action": [beta_gap.pk]})

    with schema_context("beta"):
        beta_gap.refresh_from_db()
        assert (beta_gap.question, beta_gap.message_count, beta_gap.status, beta_gap.last_seen_at) == beta_state
        assert not KnowledgeEntry.objects.exists()

