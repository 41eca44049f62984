"""Customers rate answers (docs/ANSWERING.md, "Ratings"), end to end against the sandbox: 👍/👎 items under
the answer on 微信客服 (clicked as WeCom reports clicks), the prompt and keyword replies on the self-built app,
one rating per answer counted on its knowledge entry, the settings validated, and tenant isolation."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import AnswerFeedback, Contact, Conversation, DeskSettings, Message, OutboundMessage, WeComApp
from conversations.services.answer_feedback import RatingRequest, rate_answer
from conversations.services.demo import ensure_demo_answering
from conversations.services.menus import HEAD_TAIL_MAX_BYTES
from conversations.vocabulary import Outcome, Stage
from kb.models import EntryStats
from testing.accounts import api_client
from testing.admin_forms import desk_settings_form, desk_settings_url
from testing.factories import FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from testing.wecom import customer_says

from .test_menus import answer_and_deliver, pull, trace

pytestmark = pytest.mark.django_db

CUSTOMER = "wmRatingCustomer1"
SHIPPING_ANSWER = "下单后 48 小时内发货，快递一般 3 天到。"
THANKS = "感谢您的评价！"


@pytest.fixture
def shop(tenant_a, sandbox, redis_client) -> dict:
    """Tenant alpha with ratings on: a 微信客服 account, a self-built app, one entry, a default script."""
    with schema_context("alpha"):
        kf_app = WeComAppFactory(kind="kf")
        app = WeComAppFactory()
        shipping = KnowledgeEntryFactory(question="多久发货？", answer=SHIPPING_ANSWER, tags=["发货", "快递"])
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
        DeskSettings.objects.update_or_create(pk=1, defaults={"answer_feedback": True, "knowledge_min_score": 0.3})
    for application in (kf_app, app):  # the token cache outlives the rolled-back row
        redis_client.delete(f"alpha:wecom:token:{application.pk}")
    yield {"kf": kf_app, "app": app, "shipping": shipping}
    for application in (kf_app, app):
        redis_client.delete(f"alpha:wecom:token:{application.pk}")


def kf_says(sandbox, app: WeComApp, text: str, capture, *, user: str = CUSTOMER):
    with schema_context("alpha"):
        inbound = pull(app, sandbox.queue_kf_text(CORP_ID, OPEN_KFID, user, text, notify=False), capture)[0]
        answer_and_deliver(app, user=user)
        return inbound


def kf_clicks(sandbox, app: WeComApp, menu_id: str, capture, *, user: str = CUSTOMER):
    with schema_context("alpha"):
        inbound = pull(app, sandbox.customer_clicks(CORP_ID, OPEN_KFID, user, menu_id, notify=False), capture)[0]
        answer_and_deliver(app, user=user)
        return inbound


def stats(entry) -> tuple[int, int, int]:
    row = EntryStats.objects.filter(entry=entry).first()
    return (row.used_count, row.helpful_count, row.unhelpful_count) if row else (0, 0, 0)


# -- 微信客服: 👍/👎 under the answer ----------------------------------------------------------------


def test_a_kf_answer_carries_rating_items_and_a_click_is_stored_counted_and_thanked(
        shop, sandbox, django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], "多久发货", django_capture_on_commit_callbacks)

    menus = sandbox.received_menus(CUSTOMER)
    assert len(menus) == 1 and menus[0]["head"] == SHIPPING_ANSWER  # the answer itself, no extra message
    assert sandbox.received_texts(CUSTOMER) == []
    with schema_context("alpha"):
        answer = Message.objects.get(author=Message.Author.KNOWLEDGE)
        assert answer.text == SHIPPING_ANSWER and answer.knowledge_entry_id == shop["shipping"].pk
        assert [item["id"] for item in menus[0]["items"]] == [f"rate:{answer.pk}:helpful",
                                                              f"rate:{answer.pk}:unhelpful"]
        assert stats(shop["shipping"]) == (1, 0, 0)

    click = kf_clicks(sandbox, shop["kf"], f"rate:{answer.pk}:helpful", django_capture_on_commit_callbacks)

    assert sandbox.received_texts(CUSTOMER) == [THANKS]
    with schema_context("alpha"):
        feedback = AnswerFeedback.objects.get()
        assert (feedback.answer_id, feedback.rating, feedback.knowledge_entry_id, feedback.inbound_id) == (
            answer.pk, "helpful", shop["shipping"].pk, click.pk)
        assert stats(shop["shipping"]) == (1, 1, 0)
        events = trace(click)
        assert (Stage.RATED.value, {"rating": "helpful", "answer": answer.pk, "entry": shop["shipping"].pk,
                                    "stored": True}) in events
        assert ("processed", {"outcome": Outcome.RATING.value}) in events
        assert not any(stage in (Stage.RETRIEVED, Stage.FALLBACK) for stage, _ in events)  # not a question


def test_a_second_click_replaces_the_rating_and_moves_the_count(shop, sandbox, django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], "多久发货", django_capture_on_commit_callbacks)
    with schema_context("alpha"):
        answer = Message.objects.get(author=Message.Author.KNOWLEDGE)

    kf_clicks(sandbox, shop["kf"], f"rate:{answer.pk}:helpful", django_capture_on_commit_callbacks)
    kf_clicks(sandbox, shop["kf"], f"rate:{answer.pk}:unhelpful", django_capture_on_commit_callbacks)

    with schema_context("alpha"):
        assert list(AnswerFeedback.objects.values_list("rating", flat=True)) == ["unhelpful"]
        assert stats(shop["shipping"]) == (1, 0, 1)


def test_a_long_kf_answer_ends_in_a_menu_whose_head_fits_wecoms_limit(shop, sandbox,
                                                                     django_capture_on_commit_callbacks):
    long_answer = "。".join(f"第{n}条：退货请在订单页提交申请并寄回商品，我们收到后三个工作日内退款" for n in range(40))
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="退货流程是什么？", answer=long_answer, tags=["退货流程"])

    kf_says(sandbox, shop["kf"], "退货流程是什么", django_capture_on_commit_callbacks)

    menus, texts = sandbox.received_menus(CUSTOMER), sandbox.received_texts(CUSTOMER)
    assert len(menus) == 1 and len(menus[0]["head"].encode()) <= HEAD_TAIL_MAX_BYTES
    assert texts and "".join([*texts, menus[0]["head"]]).replace("。", "") == long_answer.replace("。", "")
    with schema_context("alpha"):
        rows = list(OutboundMessage.objects.order_by("id"))
        assert [row.msgtype for row in rows] == ["text"] * (len(rows) - 1) + ["msgmenu"]
        assert {row.parts_total for row in rows} == {len(rows)}
        assert all(row.status == OutboundMessage.Status.SENT for row in rows)


def test_a_click_naming_another_customers_answer_stores_nothing(shop, sandbox, django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], "多久发货", django_capture_on_commit_callbacks, user="wmOtherCustomer01")
    with schema_context("alpha"):
        others = Message.objects.get(author=Message.Author.KNOWLEDGE)
        # A forged click: WeCom reports an id our menus never gave this customer.
        message = {"external_userid": CUSTOMER, "msgtype": "text",
                   "text": {"content": "👍 有帮助", "menu_id": f"rate:{others.pk}:helpful"}}
        inbound = pull(shop["kf"], sandbox.queue_kf_messages(CORP_ID, OPEN_KFID, [message], notify=False),
                       django_capture_on_commit_callbacks)[0]
        answer_and_deliver(shop["kf"], user=CUSTOMER)

        assert not AnswerFeedback.objects.exists()
        assert stats(shop["shipping"]) == (1, 0, 0)
        events = trace(inbound)
        assert (Stage.RATED.value, {"rating": "helpful", "answer": others.pk, "stored": False}) in events
        assert ("processed", {"outcome": Outcome.RATING.value}) in events


def test_ratings_off_answers_are_plain_texts_and_keywords_are_questions(shop, sandbox,
                                                                        django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        DeskSettings.objects.filter(pk=1).update(answer_feedback=False)

    kf_says(sandbox, shop["kf"], "多久发货", django_capture_on_commit_callbacks)
    reply = kf_says(sandbox, shop["kf"], "有用", django_capture_on_commit_callbacks)

    assert sandbox.received_menus(CUSTOMER) == []
    assert sandbox.received_texts(CUSTOMER) == [SHIPPING_ANSWER, "抱歉，请稍后再试。"]
    with schema_context("alpha"):
        assert ("processed", {"outcome": Outcome.FALLBACK.value}) in trace(reply)
        assert not AnswerFeedback.objects.exists()
        assert stats(shop["shipping"]) == (1, 0, 0)  # uses are counted with or without ratings


# -- self-built app: the prompt and keyword replies --------------------------------------------------


def test_the_self_built_app_asks_with_a_prompt_and_a_keyword_reply_rates_the_latest_answer(shop, sandbox):
    with schema_context("alpha"):
        customer_says(shop["app"], "多久发货", user="lisi")
        answer_and_deliver(shop["app"], user="lisi")
        reply = customer_says(shop["app"], " 没用！", user="lisi")
        answer_and_deliver(shop["app"], user="lisi")

        answer = Message.objects.get(author=Message.Author.KNOWLEDGE)
        assert answer.text == SHIPPING_ANSWER  # the transcript keeps the answer without the prompt
        feedback = AnswerFeedback.objects.get()
        assert (feedback.answer_id, feedback.rating, feedback.inbound_id) == (answer.pk, "unhelpful", reply.pk)
        assert stats(shop["shipping"]) == (1, 0, 1)
        assert ("processed", {"outcome": Outcome.RATING.value}) in trace(reply)

    texts = [text.rstrip("\u200b") for text in sandbox.received_texts("lisi")]
    assert texts == [f"{SHIPPING_ANSWER}\n\n这个回答有帮助吗？回复“有用”或“没用”。", THANKS]
    assert sandbox.calls(path="kf/send_msg") == []


def test_a_keyword_with_no_answer_to_rate_is_answered_as_a_question(shop, sandbox):
    with schema_context("alpha"):
        reply = customer_says(shop["app"], "有用", user="lisi")
        answer_and_deliver(shop["app"], user="lisi")

        assert not AnswerFeedback.objects.exists()
        events = trace(reply)
        assert (Stage.RATED.value, {"rating": "helpful", "answer": None, "stored": False}) in events
        assert ("processed", {"outcome": Outcome.FALLBACK.value}) in events
    assert [text.rstrip("\u200b") for text in sandbox.received_texts("lisi")] == ["抱歉，请稍后再试。"]


def test_a_keyword_to_a_human_is_for_the_human(shop, sandbox):
    with schema_context("alpha"):
        customer_says(shop["app"], "多久发货", user="lisi")
        answer_and_deliver(shop["app"], user="lisi")
        Conversation.objects.filter(contact__external_id="lisi").update(state=Conversation.State.HUMAN)
        reply = customer_says(shop["app"], "没用", user="lisi")
        answer_and_deliver(shop["app"], user="lisi")

        assert not AnswerFeedback.objects.exists()
        assert ("processed", {"outcome": Outcome.ROUTED_TO_HUMAN.value}) in trace(reply)


def test_a_rating_is_scoped_to_the_tenant(shop, tenant_b, sandbox):
    with schema_context("alpha"):
        customer_says(shop["app"], "多久发货", user="lisi")
        answer_and_deliver(shop["app"], user="lisi")
        answer = Message.objects.get(author=Message.Author.KNOWLEDGE)
    with schema_context("beta"):
        app = WeComAppFactory()
        inbound = customer_says(app, "有用", user="lisi")
        contact = Contact.objects.get(app=app, external_id="lisi")
        assert rate_answer(contact=contact, request=RatingRequest(rating="helpful", answer_id=answer.pk),
                           inbound=inbound) is None
        assert not AnswerFeedback.objects.exists()
    with schema_context("alpha"):
        assert not AnswerFeedback.objects.exists()


# -- settings --------------------------------------------------------------------------------------


def test_the_admin_saves_ratings_and_refuses_a_keyword_in_both_lists(admin_client):
    form = desk_settings_form(answer_feedback="on", feedback_helpful_keywords="有用\n好评",
                              feedback_unhelpful_keywords="没用\n好评！", feedback_thanks="谢谢！")
    response = admin_client.post(desk_settings_url(), form)
    assert response.status_code == 200
    assert "Also a helpful keyword: 好评." in response.content.decode()

    form["feedback_unhelpful_keywords"] = "没用\n差评"
    assert admin_client.post(desk_settings_url(), form).status_code == 302
    with schema_context("alpha"):
        desk = DeskSettings.current()
        assert desk.answer_feedback and desk.feedback_unhelpful_keywords == ["没用", "差评"]


def test_the_api_refuses_a_keyword_of_only_punctuation(api_keys):
    client = api_client(api_keys["alpha"])
    response = client.patch("/t/alpha/api/desk-settings/update/", {"feedback_helpful_keywords": ["！！"]},
                            content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"]["feedback_helpful_keywords"] == [
        "A keyword needs a letter, a digit or an emoji, not only spaces and punctuation."]
    response = client.patch("/t/alpha/api/desk-settings/update/",
                            {"answer_feedback": True, "feedback_helpful_keywords": ["赞"]},
                            content_type="application/json")
    assert response.status_code == 200 and response.json()["feedback_helpful_keywords"] == ["赞"]


# -- what operators see ----------------------------------------------------------------------------


def test_the_entry_list_shows_uses_and_ratings(shop, sandbox, admin_client, django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], "多久发货", django_capture_on_commit_callbacks)
    with schema_context("alpha"):
        answer = Message.objects.get(author=Message.Author.KNOWLEDGE)
    kf_clicks(sandbox, shop["kf"], f"rate:{answer.pk}:unhelpful", django_capture_on_commit_callbacks)

    page = admin_client.get("/t/alpha/admin/kb/knowledgeentry/").content.decode()
    row = page[page.index("多久发货？"):]
    row = row[:row.index("</tr>")]
    assert '<td class="field-used">1</td>' in row and '<td class="field-rated">0 / 1</td>' in row


def test_the_ratings_list_shows_this_tenants_ratings_only(shop, sandbox, tenant_b, admin_client,
                                                         django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], "多久发货", django_capture_on_commit_callbacks)
    with schema_context("alpha"):
        answer = Message.objects.get(author=Message.Author.KNOWLEDGE)
    kf_clicks(sandbox, shop["kf"], f"rate:{answer.pk}:unhelpful", django_capture_on_commit_callbacks)

    page = admin_client.get("/t/alpha/admin/conversations/answerfeedback/").content.decode()
    assert SHIPPING_ANSWER in page and f'/t/alpha/admin/kb/knowledgeentry/{shop["shipping"].pk}/change/' in page
    with schema_context("alpha"):
        feedback = AnswerFeedback.objects.get()
    assert admin_client.get(f"/t/alpha/admin/conversations/answerfeedback/{feedback.pk}/change/").status_code == 200
    assert admin_client.post("/t/alpha/admin/conversations/answerfeedback/add/", {}).status_code == 403
    with schema_context("beta"):
        assert not AnswerFeedback.objects.exists()


def test_a_new_demo_asks_for_ratings(tenant_a, sandbox):
    with schema_context("alpha"):
        ensure_demo_answering(model_base_url=sandbox.model_base_url)
        assert DeskSettings.current().answer_feedback
