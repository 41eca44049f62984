"""Satisfaction surveys (tickets/csat.py, docs/AGENTS.md "Satisfaction surveys"), end to end against the sandbox:
after an agent closes a 微信客服 conversation the customer receives one menu (the closing text and the question
over 满意 / 一般 / 不满意, sent with the session-end code), on the self-built app a text asking for a number; the
first answer is stored on the ticket, a second one is an ordinary message; no survey for the bot alone; what
WeCom's rules forbid is recorded, not sent; the settings validated in the admin and the API; tenants apart; and
the answering round does not ask the human side about contacts without a pending survey."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from conversations.models import Contact, DeskSettings, InboundMessage, TraceEvent, WeComApp
from conversations.services import surveys
from conversations.services.answering import answer_pending
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.outbound import deliver_for_contact
from conversations.vocabulary import Outcome, Stage
from testing.accounts import api_client
from testing.factories import AgentProfileFactory, ConversationFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from testing.wecom import customer_says
from tickets import integration
from tickets.csat import csat_by_agent
from tickets.csat_models import CsatSettings, Survey
from tickets.models import Ticket, TicketEvent
from tickets.services import Integration, claim_conversation, close_conversation, end_kf_session, reply_as_agent
from tickets.tests.test_kf_servicers import CUSTOMER as SERVICERS_CUSTOMER
from tickets.tests.test_kf_servicers import servicers_conversation, session_event  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

KF_CUSTOMER = "wmCsatCustomer1"
APP_USER = "csat-lisi"
QUESTION = "请您对本次服务进行评价"
THANKS = "感谢您的评价！"


@pytest.fixture
def shop(tenant_a, sandbox, redis_client):
    """Alpha with surveys on: a 微信客服 account and a self-built app (tokens and survey markers cleaned)."""
    with schema_context("alpha"):
        kf_app, app = WeComAppFactory(kind="kf"), WeComAppFactory()
        CsatSettings.objects.update_or_create(pk=1, defaults={"enabled": True})
    yield {"kf": kf_app, "app": app}
    for application in (kf_app, app):
        redis_client.delete(f"alpha:wecom:token:{application.pk}")
    for key in redis_client.scan_iter("*:csat-pending:*"):
        redis_client.delete(key)


def pull(app: WeComApp, queued: dict, capture) -> InboundMessage:
    with capture(execute=False):
        pull_kf_messages(app=app, open_kfid=OPEN_KFID, token=queued["token"])
    return InboundMessage.objects.get(app=app, natural_key=f"kf:{queued['msgids'][0]}")


def answer(app: WeComApp, user: str) -> None:
    assert answer_pending(deliver=False) is None
    deliver_for_contact(Contact.objects.get(app=app, external_id=user).pk)


def outcome(inbound: InboundMessage) -> str | None:
    detail = TraceEvent.objects.filter(trace_id=inbound.trace_id, stage=Stage.PROCESSED).values_list(
        "detail", flat=True).first()
    return detail and detail["outcome"]


def kf_handled_and_closed(shop, sandbox, capture, *, customer: str = KF_CUSTOMER) -> Ticket:
    """The customer asks for a human (a real pull and round), an agent claims, answers and closes; the job's
    end_kf_session ends the WeCom session and says goodbye; everything delivered."""
    app = shop["kf"]
    pull(app, sandbox.queue_kf_text(CORP_ID, OPEN_KFID, customer, "转人工", notify=False), capture)
    answer(app, customer)
    ticket = Ticket.objects.get(conversation__contact__external_id=customer)
    agent = AgentProfileFactory(user__username=f"agent-{customer}")
    claim_conversation(conversation_id=ticket.conversation_id, profile=agent)
    reply_as_agent(conversation_id=ticket.conversation_id, profile=agent, text="您好，已为您处理好了")
    close_conversation(conversation_id=ticket.conversation_id, profile=agent)
    with capture(execute=True):
        end_kf_session(conversation_id=ticket.conversation_id, ticket_id=ticket.pk)  # what the job runs
    deliver_for_contact(ticket.conversation.contact_id)
    ticket.refresh_from_db()
    return ticket


def app_handled_and_closed(app: WeComApp, capture, *, user: str = APP_USER) -> Ticket:
    customer_says(app, "转人工", user=user)
    answer(app, user)
    ticket = Ticket.objects.get(conversation__contact__external_id=user)
    agent = AgentProfileFactory(user__username=f"agent-{user}")
    claim_conversation(conversation_id=ticket.conversation_id, profile=agent)
    reply_as_agent(conversation_id=ticket.conversation_id, profile=agent, text="您好，已为您处理好了")
    with capture(execute=True):  # the survey marks the contact once the close commits
        close_conversation(conversation_id=ticket.conversation_id, profile=agent)
    deliver_for_contact(ticket.conversation.contact_id)
    ticket.refresh_from_db()
    return ticket


# -- 微信客服 ----------------------------------------------------------------------------------------------


def test_after_an_agent_closes_a_kf_conversation_the_customer_gets_one_menu_and_a_click_is_stored_once(
        shop, sandbox, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    with schema_context("alpha"):
        ticket = kf_handled_and_closed(shop, sandbox, capture)
        closing = DeskSettings.current().closing_message

        menu = sandbox.received_menus(KF_CUSTOMER)[-1]  # the one message the session-end code allows
        assert menu["head"] == f"{closing}\n\n{QUESTION}"
        assert menu["items"] == [{"id": f"csat:{ticket.pk}:3", "content": "满意"},
                                 {"id": f"csat:{ticket.pk}:2", "content": "一般"},
                                 {"id": f"csat:{ticket.pk}:1", "content": "不满意"}]
        assert closing not in sandbox.received_texts(KF_CUSTOMER)  # not sent twice
        survey = Survey.objects.get(ticket=ticket)
        assert (survey.status, survey.agent_id) == (Survey.Status.SENT, ticket.assignee_id)

        click = pull(shop["kf"], sandbox.customer_clicks(CORP_ID, OPEN_KFID, KF_CUSTOMER, f"csat:{ticket.pk}:3",
                                                         notify=False), capture)
        answer(shop["kf"], KF_CUSTOMER)

        survey.refresh_from_db()
        assert (survey.status, survey.score, survey.label, survey.inbound_id) == ("answered", 3, "满意", click.pk)
        assert survey.answered_at is not None
        assert outcome(click) == Outcome.SURVEY
        assert TraceEvent.objects.filter(trace_id=click.trace_id, stage=Stage.SURVEYED,
                                         detail__score=3).exists()
        assert TicketEvent.objects.get(ticket=ticket, kind="csat_answered").detail == {
            "score": 3, "label": "满意", "scale": "3"}
        assert sandbox.received_texts(KF_CUSTOMER)[-1] == THANKS

        again = pull(shop["kf"], sandbox.customer_clicks(CORP_ID, OPEN_KFID, KF_CUSTOMER, f"csat:{ticket.pk}:1",
                                                         notify=False), capture)
        answer(shop["kf"], KF_CUSTOMER)
        survey.refresh_from_db()
        assert (survey.score, survey.label) == (3, "满意")  # the first answer counts
        assert outcome(again) not in (Outcome.SURVEY, None)  # an ordinary message, answered as one
        assert TicketEvent.objects.filter(ticket=ticket, kind="csat_answered").count() == 1


def test_wecom_refusing_to_end_the_session_records_why_no_survey_was_sent(shop, sandbox,
                                                                         django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    with schema_context("alpha"):
        pull(shop["kf"], sandbox.queue_kf_text(CORP_ID, OPEN_KFID, KF_CUSTOMER, "转人工", notify=False), capture)
        answer(shop["kf"], KF_CUSTOMER)
        ticket = Ticket.objects.get()
        agent = AgentProfileFactory(user__username="agent1")
        claim_conversation(conversation_id=ticket.conversation_id, profile=agent)
        close_conversation(conversation_id=ticket.conversation_id, profile=agent)
        sandbox.set_kf_session(CORP_ID, OPEN_KFID, KF_CUSTOMER, service_state=4)  # WeCom ended it (48 h)
        end_kf_session(conversation_id=ticket.conversation_id, ticket_id=ticket.pk)

        survey = Survey.objects.get(ticket=ticket)
        assert (survey.status, survey.reason) == (Survey.Status.NOT_SENT, "no_event_code")
        assert TicketEvent.objects.get(ticket=ticket, kind="csat_not_sent").detail == {"reason": "no_event_code"}
        assert sandbox.received_menus(KF_CUSTOMER) == []


def test_a_closing_message_too_long_for_a_menu_goes_alone_and_the_survey_is_recorded_as_not_sent(
        shop, sandbox, django_capture_on_commit_callbacks):
    long_goodbye = "感谢您的耐心等待，" * 50  # over msgmenu's 1024-byte head with the question
    with schema_context("alpha"):
        DeskSettings.objects.update_or_create(pk=1, defaults={"closing_message": long_goodbye})
        ticket = kf_handled_and_closed(shop, sandbox, django_capture_on_commit_callbacks)
        survey = Survey.objects.get(ticket=ticket)
        assert (survey.status, survey.reason) == (Survey.Status.NOT_SENT, "menu_head_too_long")
    assert sandbox.received_menus(KF_CUSTOMER) == []
    assert "".join(sandbox.received_texts(KF_CUSTOMER)).replace("\u200b", "").endswith(long_goodbye.strip())


# -- the self-built app ------------------------------------------------------------------------------------


def test_on_the_self_built_app_the_question_asks_for_a_number_and_the_first_reply_counts(
        shop, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        ticket = app_handled_and_closed(shop["app"], django_capture_on_commit_callbacks)
        texts = sandbox.received_texts(APP_USER)
        assert texts[-2:] == [DeskSettings.current().closing_message, f"{QUESTION}\n回复 1 满意 / 2 一般 / 3 不满意"]

        reply = customer_says(shop["app"], " 2。", user=APP_USER)
        answer(shop["app"], APP_USER)
        survey = Survey.objects.get(ticket=ticket)
        assert (survey.status, survey.score, survey.label, survey.inbound_id) == ("answered", 2, "一般", reply.pk)
        assert outcome(reply) == Outcome.SURVEY
        assert sandbox.received_texts(APP_USER)[-1] == THANKS

        later = customer_says(shop["app"], "3", user=APP_USER)
        answer(shop["app"], APP_USER)
        survey.refresh_from_db()
        assert (survey.score, survey.label) == (2, "一般")
        assert outcome(later) != Outcome.SURVEY


def test_a_five_point_scale_and_an_empty_thanks(shop, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        CsatSettings.objects.filter(pk=1).update(scale="5", thanks="", question="您对这次服务满意吗？")
        ticket = app_handled_and_closed(shop["app"], django_capture_on_commit_callbacks)
        assert sandbox.received_texts(APP_USER)[-1] == (
            "您对这次服务满意吗？\n回复 1 非常满意 / 2 满意 / 3 一般 / 4 不满意 / 5 非常不满意")
        sent = len(sandbox.received_texts(APP_USER))

        customer_says(shop["app"], "非常满意", user=APP_USER)  # the label itself counts too
        answer(shop["app"], APP_USER)
        survey = Survey.objects.get(ticket=ticket)
        assert (survey.score, survey.label, survey.scale) == (5, "非常满意", "5")
        assert len(sandbox.received_texts(APP_USER)) == sent  # no thanks configured: nothing sent

        rows = csat_by_agent(start=survey.answered_at.replace(hour=0, minute=0),
                             end=survey.answered_at.replace(hour=23, minute=59))
        assert rows == [{"agent_id": ticket.assignee_id, "agent": f"agent-{APP_USER}", "scale": "5", "answered": 1,
                         "average": 5.0, "counts": {1: 0, 2: 0, 3: 0, 4: 0, 5: 1}}]


def test_no_survey_when_no_human_handled_it_or_surveys_are_off(shop, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        # The bot alone answered; an integration closes it (a ticket opened only to close it).
        bot = ConversationFactory(contact__app=shop["app"], contact__external_id="bot-only")
        integration.close(conversation_id=bot.pk, by=Integration(label="api-key:test"))
        # Handed off, nobody took it, closed through the API.
        customer_says(shop["app"], "转人工", user="waited")
        answer(shop["app"], "waited")
        waited = Ticket.objects.get(conversation__contact__external_id="waited")
        integration.close(conversation_id=waited.conversation_id, by=Integration(label="api-key:test"))
        assert not Survey.objects.exists()

        CsatSettings.objects.filter(pk=1).update(enabled=False)
        app_handled_and_closed(shop["app"], django_capture_on_commit_callbacks)
        assert not Survey.objects.exists()
        assert not any(QUESTION in text for text in sandbox.received_texts(APP_USER))


def test_the_round_does_not_ask_the_human_side_without_a_pending_survey(shop, sandbox,
                                                                       django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        app_handled_and_closed(shop["app"], django_capture_on_commit_callbacks)  # another contact's survey pending
        customer_says(shop["app"], "你们几点上班", user="someone-else")
        with CaptureQueriesContext(connection) as queries:
            assert answer_pending(deliver=False) is None
        assert not any("tickets_survey" in query["sql"] or "tickets_csatsettings" in query["sql"]
                       for query in queries.captured_queries)
        contact = Contact.objects.get(external_id="someone-else")
        assert surveys.pending_contacts([contact.pk]) == set()


def test_surveys_are_the_tenants_own(shop, tenant_b, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        ticket = app_handled_and_closed(shop["app"], django_capture_on_commit_callbacks)
    with schema_context("beta"):
        assert not CsatSettings.current().enabled  # off unless the tenant turns it on
        assert not Survey.objects.exists()
        app = WeComAppFactory()
        # A beta customer answering "1" is an ordinary message: the survey is alpha's.
        inbound = customer_says(app, "1", user=APP_USER)
        answer(app, APP_USER)
        assert outcome(inbound) != Outcome.SURVEY
    with schema_context("alpha"):
        assert Survey.objects.get(ticket=ticket).status == Survey.Status.SENT


# -- settings: admin and API ---------------------------------------------------------------------------------


def test_the_admin_validates_the_settings(admin_client):
    with schema_context("alpha"):
        url = f"/t/alpha/admin/tickets/csatsettings/{CsatSettings.current().pk}/change/"
    form = {"enabled": "on", "scale": "5", "question": "  ", "thanks": "", "window_hours": "49"}
    response = admin_client.post(url, form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"question", "window_hours"}

    form.update(question="您对本次服务满意吗？", window_hours="12")
    assert admin_client.post(url, form).status_code == 302
    with schema_context("alpha"):
        current = CsatSettings.current()
        assert (current.enabled, current.scale, current.window_hours, current.thanks) == (True, "5", 12, "")


def test_the_api_reads_and_validates_the_settings_per_tenant(api_keys):
    alpha, beta = api_client(api_keys["alpha"]), api_client(api_keys["beta"])
    assert alpha.get("/t/alpha/api/csat-settings/").json() == {
        "enabled": False, "scale": "3", "question": QUESTION, "thanks": THANKS, "window_hours": 24}
    response = alpha.patch("/t/alpha/api/csat-settings/update/", {"window_hours": 0, "question": " "},
                           content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"window_hours", "question"}
    response = alpha.patch("/t/alpha/api/csat-settings/update/", {"enabled": True, "scale": "5"},
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["scale"] == "5"
    assert beta.get("/t/beta/api/csat-settings/").json()["enabled"] is False
    assert alpha.get("/t/beta/api/csat-settings/").status_code in (401, 403)


def test_the_ticket_api_shows_the_survey(shop, sandbox, api_keys, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        ticket = app_handled_and_closed(shop["app"], django_capture_on_commit_callbacks)
        customer_says(shop["app"], "1", user=APP_USER)
        answer(shop["app"], APP_USER)
    body = api_client(api_keys["alpha"]).get(f"/t/alpha/api/tickets/{ticket.pk}/").json()
    assert body["csat"]["status"] == "answered" and (body["csat"]["score"], body["csat"]["label"]) == (3, "满意")
    assert any(event["kind"] == "csat_answered" for event in body["events"])


def test_a_session_a_wecom_servicer_ended_records_why_no_survey_was_sent(servicers_conversation, sandbox):  # noqa: F811
    # WeCom servicers mode: the servicer ends the session in the WeCom client; its msg_code is WeCom's own flow's.
    CsatSettings.objects.update_or_create(pk=1, defaults={"enabled": True})
    conversation, ticket = servicers_conversation()
    AgentProfileFactory(user__username="lisi-agent", wecom_userid="lisi")
    app = conversation.contact.app
    session_event(app, "csat-sess-1", 1, new="lisi")
    session_event(app, "csat-sess-2", 3, old="lisi")

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED
    survey = Survey.objects.get(ticket=ticket)
    assert (survey.status, survey.reason) == (Survey.Status.NOT_SENT, "ended_in_wecom_client")
    assert sandbox.received_menus(SERVICERS_CUSTOMER) == []
