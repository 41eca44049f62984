"""微信客服 menus end to end against the sandbox (docs/ANSWERING.md, "Menus"): the likely questions
when retrieval is unsure (a msgmenu on 微信客服, text lines on the self-built app), a click answered
as the customer's choice (a knowledge entry, or a human), the welcome menu through
send_msg_on_event, WeCom's limits checked when the settings are saved, and tenant isolation."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.actors import process_inbound
from conversations.ai.breaker import reset_breaker
from conversations.models import (
    Contact,
    Conversation,
    DeskSettings,
    InboundMessage,
    Message,
    OutboundMessage,
    TraceEvent,
    WeComApp,
)
from conversations.services.answering import answer_pending
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.menus import (
    MenuError,
    MenuItem,
    build_menu,
    menu_from_json,
    unsure_menu,
)
from conversations.services.outbound import deliver_for_contact
from conversations.vocabulary import Outcome, Stage
from kb.models import KnowledgeEntry
from testing.accounts import api_client
from testing.admin_forms import desk_settings_form, desk_settings_url
from testing.factories import AIProviderFactory, FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from testing.wecom import customer_says

pytestmark = pytest.mark.django_db

CUSTOMER = "wmMenuCustomer01"
# Scores 0.386 against both refund entries (kb/selectors.py's score): unsure under a threshold of 0.6.
UNSURE_QUESTION = "退货退款怎么弄"
RETURNS_ANSWER = "七天内可在订单页申请无理由退货。"
REFUND_ANSWER = "退款在三个工作日内原路退回。"


@pytest.fixture
def shop(tenant_a, sandbox, redis_client) -> dict:
    """Tenant alpha: a 微信客服 account, a self-built app, three entries, a default script, threshold 0.6."""
    with schema_context("alpha"):
        reset_breaker("alpha")
        kf_app = WeComAppFactory(kind="kf")
        app = WeComAppFactory()
        returns = KnowledgeEntryFactory(question="如何申请退货？", answer=RETURNS_ANSWER, tags=["退货"])
        refund = KnowledgeEntryFactory(question="退款多久到账？", answer=REFUND_ANSWER, tags=["退款"])
        KnowledgeEntryFactory(question="怎么开发票？", answer="在订单详情页申请电子发票。", tags=["发票"])
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
        DeskSettings.objects.update_or_create(pk=1, defaults={"knowledge_min_score": 0.6})
    for application in (kf_app, app):  # the token cache outlives the rolled-back row
        redis_client.delete(f"alpha:wecom:token:{application.pk}")
    yield {"kf": kf_app, "app": app, "returns": returns, "refund": refund}
    for application in (kf_app, app):
        redis_client.delete(f"alpha:wecom:token:{application.pk}")
    with schema_context("alpha"):
        reset_breaker("alpha")


def answer_and_deliver(app: WeComApp, user: str = CUSTOMER) -> None:
    """Answer what is pending (contacts are created when their first message is claimed), then deliver."""
    assert answer_pending(deliver=False) is None
    assert deliver_for_contact(Contact.objects.get(app=app, external_id=user).pk) is None


def pull(app: WeComApp, queued: dict, capture) -> list[InboundMessage]:
    """Pull what the sandbox queued (the customer's messages), jobs not run: the test answers."""
    with capture(execute=False):
        pull_kf_messages(app=app, open_kfid=OPEN_KFID, token=queued["token"])
    return [InboundMessage.objects.get(app=app, natural_key=f"kf:{msgid}") for msgid in queued["msgids"]]


def kf_says(sandbox, app: WeComApp, text: str, capture) -> InboundMessage:
    with schema_context("alpha"):
        inbound = pull(app, sandbox.queue_kf_text(CORP_ID, OPEN_KFID, CUSTOMER, text, notify=False), capture)[0]
        answer_and_deliver(app)
        return inbound


def kf_clicks(sandbox, app: WeComApp, menu_id: str, capture) -> InboundMessage:
    with schema_context("alpha"):
        inbound = pull(app, sandbox.customer_clicks(CORP_ID, OPEN_KFID, CUSTOMER, menu_id, notify=False), capture)[0]
        answer_and_deliver(app)
        return inbound


def trace(inbound: InboundMessage) -> list[tuple[str, dict]]:
    return [(e.stage, e.detail) for e in TraceEvent.objects.filter(trace_id=inbound.trace_id).order_by("id")]


# -- building a menu -------------------------------------------------------------------------------


def test_a_menu_over_wecoms_limits_cannot_be_built():
    ten = [MenuItem(id=str(n), content=f"问题{n}") for n in range(10)]
    assert len(build_menu(head="请选择", items=ten).items) == 10

    with pytest.raises(MenuError, match="At most 10 items"):
        build_menu(head="请选择", items=[*ten, MenuItem(id="10", content="第十一项")])
    with pytest.raises(MenuError, match="Item id"):
        build_menu(head="", items=[MenuItem(id="x" * 65, content="好")])
    with pytest.raises(MenuError, match="its text"):
        build_menu(head="", items=[MenuItem(id="1", content="长" * 43)])  # 129 bytes
    with pytest.raises(MenuError, match="head"):
        build_menu(head="头" * 342, items=[MenuItem(id="1", content="好")])
    with pytest.raises(MenuError, match="used twice"):
        build_menu(head="", items=[MenuItem(id="1", content="好"), MenuItem(id="1", content="坏")])


def test_a_menu_renders_as_text_lines_and_survives_the_ledger():
    menu = build_menu(head="您好", items=[MenuItem(id="kb:1", content="如何退货"), MenuItem(id="human",
                                                                                       content="转人工客服")],
                      tail="请点击")

    assert menu.as_text() == "您好\n1. 如何退货\n2. 转人工客服\n请点击"
    assert menu_from_json(menu.as_json()) == menu
    assert menu.wecom_payload()["list"][0] == {"type": "click", "click": {"id": "kb:1", "content": "如何退货"}}


def test_the_unsure_rule_wants_matches_below_the_threshold_but_above_half_of_it(shop):
    with schema_context("alpha"):
        entries = list(KnowledgeEntry.objects.order_by("pk"))

    class Match:  # a KnowledgeMatch's two fields the rule reads
        def __init__(self, entry, score):
            self.entry, self.score = entry, score

    sure = [Match(entries[0], 0.6), Match(entries[1], 0.5)]
    unsure = [Match(entries[0], 0.5), Match(entries[1], 0.31), Match(entries[2], 0.29)]
    assert unsure_menu(matches=sure, min_score=0.6, with_human=True) is None  # answered, not asked
    assert unsure_menu(matches=[Match(entries[0], 0.29)], min_score=0.6, with_human=True) is None  # too far
    menu = unsure_menu(matches=unsure, min_score=0.6, with_human=True)
    assert [item.id for item in menu.items] == [f"kb:{entries[0].pk}", f"kb:{entries[1].pk}", "human"]
    assert menu.head == "您是想问以下问题吗？"
    without_human = unsure_menu(matches=unsure, min_score=0.6, with_human=False)
    assert [item.id for item in without_human.items] == [f"kb:{entries[0].pk}", f"kb:{entries[1].pk}"]


# -- the likely questions --------------------------------------------------------------------------


def test_unsure_retrieval_sends_a_menu_of_likely_questions_on_kf_and_a_click_answers_it(
        shop, sandbox, django_capture_on_commit_callbacks):
    question = kf_says(sandbox, shop["kf"], UNSURE_QUESTION, django_capture_on_commit_callbacks)

    menus = sandbox.received_menus(CUSTOMER)
    assert len(menus) == 1 and menus[0]["head"] == "您是想问以下问题吗？"
    assert sorted(item["id"] for item in menus[0]["items"]) == sorted(
        [f"kb:{shop['returns'].pk}", f"kb:{shop['refund'].pk}", "human"])
    assert menus[0]["items"][-1] == {"id": "human", "content": "转人工客服"}
    with schema_context("alpha"):
        row = OutboundMessage.objects.get(contact__external_id=CUSTOMER)
        assert (row.msgtype, row.status) == ("msgmenu", OutboundMessage.Status.SENT)
        stages = [stage for stage, _ in trace(question)]
        assert stages.index("retrieved") < stages.index("fallback") < stages.index("processed") < stages.index("sent")
        agent_line = Message.objects.filter(author=Message.Author.FALLBACK).get()
        assert agent_line.text.startswith("您是想问以下问题吗？\n1. ")  # agents read the menu as text

    click = kf_clicks(sandbox, shop["kf"], f"kb:{shop['refund'].pk}", django_capture_on_commit_callbacks)

    assert sandbox.received_texts(CUSTOMER)[-1] == REFUND_ANSWER
    with schema_context("alpha"):
        events = trace(click)
        retrieved = [detail for stage, detail in events if stage == Stage.RETRIEVED]
        assert retrieved == [{"menu_id": f"kb:{shop['refund'].pk}", "top_entry": shop["refund"].pk, "hits": 1,
                              "top_score": None}]
        assert ("processed", {"outcome": Outcome.KNOWLEDGE.value}) in events
        assert [stage for stage, _ in events].index("retrieved") < [stage for stage, _ in events].index("processed")
        assert Message.objects.filter(author=Message.Author.CUSTOMER).last().text == "退款多久到账？"


def test_on_the_self_built_app_the_likely_questions_are_text_lines(shop, sandbox):
    with schema_context("alpha"):
        customer_says(shop["app"], UNSURE_QUESTION, user="lisi")
        answer_and_deliver(shop["app"], user="lisi")
        assert OutboundMessage.objects.get(contact__external_id="lisi").msgtype == "text"

    text = sandbox.received_texts("lisi")[0].rstrip("\u200b")
    lines = text.split("\n")
    assert lines[0] == "您是想问以下问题吗？"
    assert sorted(lines[1:3]) == ["1. 如何申请退货？", "2. 退款多久到账？"] or sorted(
        lines[1:3]) == ["1. 退款多久到账？", "2. 如何申请退货？"]
    assert lines[3:] == ["3. 转人工客服"]
    assert sandbox.calls(path="kf/send_msg") == []


def test_a_question_nothing_resembles_still_gets_the_fallback_script(shop, sandbox,
                                                                      django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], "今天天气怎么样", django_capture_on_commit_callbacks)

    assert sandbox.received_menus(CUSTOMER) == []
    assert sandbox.received_texts(CUSTOMER) == ["抱歉，请稍后再试。"]


def test_when_the_model_fails_the_fallback_is_the_menu_of_likely_questions(shop, sandbox,
                                                                            django_capture_on_commit_callbacks):
    sandbox.model_configure(available=False)
    with schema_context("alpha"):
        AIProviderFactory(base_url=sandbox.model_base_url, api_key="k-alpha", timeout_seconds=2)

    question = kf_says(sandbox, shop["kf"], UNSURE_QUESTION, django_capture_on_commit_callbacks)

    assert len(sandbox.received_menus(CUSTOMER)) == 1
    with schema_context("alpha"):
        stages = [stage for stage, _ in trace(question)]
        assert stages.index("llm_call") < stages.index("fallback") < stages.index("processed")
        fallback = next(detail for stage, detail in trace(question) if stage == "fallback")
        assert fallback["reason"] == "model error: menu of likely questions"


# -- clicks ----------------------------------------------------------------------------------------


def test_a_click_on_human_hands_off(shop, sandbox, django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], UNSURE_QUESTION, django_capture_on_commit_callbacks)

    click = kf_clicks(sandbox, shop["kf"], "human", django_capture_on_commit_callbacks)

    with schema_context("alpha"):
        conversation = Conversation.objects.get(contact__external_id=CUSTOMER)
        assert conversation.state == Conversation.State.WAITING_HUMAN
        handoff = [detail for stage, detail in trace(click) if stage == Stage.HANDOFF]
        assert len(handoff) == 1 and handoff[0]["menu_id"] == "human"
        assert handoff[0]["reason"] == "customer_asked"
    assert sandbox.received_texts(CUSTOMER)[-1].startswith("正在为您转接人工客服")


def test_a_click_naming_another_tenants_entry_is_not_answered_from_it(shop, tenant_b, sandbox,
                                                                       django_capture_on_commit_callbacks):
    with schema_context("beta"):
        secret = KnowledgeEntryFactory(question="内部价格表", answer="BETA 的内部价格：九折。")
    with schema_context("alpha"):
        KnowledgeEntry.objects.filter(pk=secret.pk).delete()  # alpha has no entry with that id
        # A click WeCom reports with an id that is not ours (a stale or forged menu).
        message = {"external_userid": CUSTOMER, "msgtype": "text",
                   "text": {"content": "内部价格表", "menu_id": f"kb:{secret.pk}"}}
        inbound = pull(shop["kf"], sandbox.queue_kf_messages(CORP_ID, OPEN_KFID, [message], notify=False),
                       django_capture_on_commit_callbacks)[0]
        answer_and_deliver(shop["kf"])
        events = trace(inbound)
        assert not any(detail.get("menu_id") for _, detail in events)  # not taken as a click on an entry
        assert ("processed", {"outcome": Outcome.FALLBACK.value}) in events

    assert sandbox.received_texts(CUSTOMER) == ["抱歉，请稍后再试。"]
    assert "九折" not in "".join(sandbox.received_texts(CUSTOMER))


def test_a_click_on_a_disabled_entry_takes_the_normal_path(shop, sandbox, django_capture_on_commit_callbacks):
    kf_says(sandbox, shop["kf"], UNSURE_QUESTION, django_capture_on_commit_callbacks)
    with schema_context("alpha"):
        KnowledgeEntry.objects.filter(pk=shop["refund"].pk).update(enabled=False)

    click = kf_clicks(sandbox, shop["kf"], f"kb:{shop['refund'].pk}", django_capture_on_commit_callbacks)

    assert REFUND_ANSWER not in sandbox.received_texts(CUSTOMER)
    with schema_context("alpha"):
        retrieved = [detail for stage, detail in trace(click) if stage == Stage.RETRIEVED]
        assert len(retrieved) == 1 and "menu_id" not in retrieved[0]  # searched like any question


# -- the welcome menu ------------------------------------------------------------------------------


def test_a_welcome_with_items_goes_out_as_a_menu_through_send_msg_on_event(shop, sandbox,
                                                                           django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        DeskSettings.objects.filter(pk=1).update(
            welcome_message="您好，欢迎光临！", handoff_menu_enabled=True,
            welcome_menu=[{"id": f"kb:{shop['returns'].pk}", "content": "如何退货"}])
    queued = sandbox.customer_enters_session(CORP_ID, OPEN_KFID, CUSTOMER, notify=False)
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=False):
        pull_kf_messages(app=shop["kf"], open_kfid=OPEN_KFID, token=queued["token"])
        event = InboundMessage.objects.get(app=shop["kf"], natural_key=f"kf:{queued['msgids'][0]}")
        process_inbound(event.pk)
        deliver_for_contact(Contact.objects.get(external_id=CUSTOMER).pk)

    assert sandbox.received_menus(CUSTOMER) == [{
        "head": "您好，欢迎光临！", "tail": "", "msgid": sandbox.received_menus(CUSTOMER)[0]["msgid"],
        "items": [{"id": f"kb:{shop['returns'].pk}", "content": "如何退货"}, {"id": "human", "content": "转人工客服"}]}]
    assert len(sandbox.calls(path="kf/send_msg_on_event")) == 1
    assert sandbox.calls(path="kf/send_msg") == []

    sandbox.queue_kf_text(CORP_ID, OPEN_KFID, CUSTOMER, "你好", notify=False)  # opens the reply window
    kf_clicks(sandbox, shop["kf"], f"kb:{shop['returns'].pk}", django_capture_on_commit_callbacks)

    assert RETURNS_ANSWER in sandbox.received_texts(CUSTOMER)


def test_a_welcome_without_items_stays_a_text(shop, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        DeskSettings.objects.filter(pk=1).update(welcome_message="您好！", welcome_menu=[])
    queued = sandbox.customer_enters_session(CORP_ID, OPEN_KFID, CUSTOMER, notify=False)
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=False):
        pull_kf_messages(app=shop["kf"], open_kfid=OPEN_KFID, token=queued["token"])
        process_inbound(InboundMessage.objects.get(app=shop["kf"], natural_key=f"kf:{queued['msgids'][0]}").pk)
        deliver_for_contact(Contact.objects.get(external_id=CUSTOMER).pk)

    assert sandbox.received_menus(CUSTOMER) == []
    assert sandbox.received_texts(CUSTOMER) == ["您好！"]


# -- the settings ----------------------------------------------------------------------------------


def test_the_admin_saves_a_welcome_menu(admin_client):
    lines = "kb:12 | 如何退货\n101 | 营业时间"

    form = desk_settings_form(welcome_menu=lines, handoff_menu_enabled="on")
    assert admin_client.post(desk_settings_url(), form).status_code == 302

    with schema_context("alpha"):
        desk = DeskSettings.current()
    assert desk.welcome_menu == [{"id": "kb:12", "content": "如何退货"}, {"id": "101", "content": "营业时间"}]
    assert desk.handoff_menu_enabled is True
    assert "kb:12 | 如何退货" in admin_client.get(desk_settings_url()).text


@pytest.mark.parametrize(("lines", "human", "problem"), [
    ("\n".join(f"{n} | 问题{n}" for n in range(10)), "on", "At most 10 items"),  # + 转人工客服 = 11
    ("\n".join(f"{n} | 问题{n}" for n in range(11)), "", "At most 10 items"),
    ("1 | " + "长" * 43, "", "its text is 1 to 128 bytes"),
    ("x" * 65 + " | 好", "", "1 to 64 bytes"),
    ("只有文字没有编号", "", "id | text"),
])
def test_the_admin_refuses_a_welcome_menu_wecom_would_refuse(admin_client, lines, human, problem):
    form = desk_settings_form(welcome_menu=lines)
    if human:
        form["handoff_menu_enabled"] = human

    refused = admin_client.post(desk_settings_url(), form)

    assert refused.status_code == 200
    assert problem in refused.content.decode()
    with schema_context("alpha"):
        assert DeskSettings.current().welcome_menu == []


def test_the_api_refuses_an_eleventh_item_and_saves_ten(api_keys):
    api = api_client(api_keys["alpha"])
    items = [{"id": str(n), "content": f"问题{n}"} for n in range(11)]

    refused = api.patch("/t/alpha/api/desk-settings/update/", {"welcome_menu": items, "handoff_menu_enabled": False},
                        content_type="application/json")
    saved = api.patch("/t/alpha/api/desk-settings/update/", {"welcome_menu": items[:10], "handoff_menu_enabled": False},
                      content_type="application/json")

    assert refused.status_code == 400 and "At most 10 items" in refused.json()["errors"]["welcome_menu"][0]
    assert saved.status_code == 200
    with schema_context("alpha"):
        assert len(DeskSettings.current().welcome_menu) == 10
