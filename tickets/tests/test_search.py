"""The conversation search of the agent screens and the REST API (tickets/search/): what a supervisor and an agent
each see, every filter including labels and the tenant's dates, the snippet escaped and marked, bad input answered
on the page (never a 500), the CSV (byte-order mark, formula-safe cells, the same access rules, the cap), the API
with its scope, and a second tenant that never appears."""

from __future__ import annotations

import csv
import io
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation, Message
from conversations.search.indexing import index_messages
from conversations.services.api_keys import create_api_key
from testing.accounts import api_client, login_cookie
from testing.factories import AgentProfileFactory, ConversationFactory, MessageFactory, TicketFactory, WeComAppFactory
from tickets.labels.models import Label
from tickets.models import AgentProfile
from tickets.search import export

# The CSV is an async iterator for the ASGI server; the test client consumes it synchronously, which Django warns of.
pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")]
DAY = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, the tenants' default time zone
SEARCH, EXPORT = "/t/alpha/agent/search/", "/t/alpha/agent/search/export.csv"


def client_for(schema: str, username: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = login_cookie(schema, username)
    return client


def conversation_with(*texts: str, at: datetime, **fields) -> Conversation:
    conversation = ConversationFactory(**fields)
    for text in texts:
        MessageFactory(conversation=conversation, text=text)
    Message.objects.filter(conversation=conversation).update(created_at=at)
    Conversation.objects.filter(pk=conversation.pk).update(started_at=at, last_message_at=at)
    return conversation


def shown(response) -> list[int]:
    """The conversations listed on a search page, in order."""
    html = response.content.decode()
    return [int(chunk.split('"', 1)[0]) for chunk in html.split('<tr data-conversation="')[1:]]


def rows(response) -> list[list[str]]:
    # The content is an async iterator (the ASGI server streams it); iterating the response consumes it here.
    body = b"".join(response).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.fixture
def world(tenant_a, tenant_b):
    """alpha: a supervisor, two agents; alice's 退款 conversation (label 售后), a waiting one, carol's closed 退款
    one (her ticket), an old 退款 one of the AI's on 微信客服; beta: a 退款 conversation and its supervisor."""
    with schema_context("alpha"):
        boss = AgentProfileFactory(user__username="boss", role=AgentProfile.Role.SUPERVISOR)
        alice = AgentProfileFactory(user__username="alice", display_name="小王")
        carol = AgentProfileFactory(user__username="carol", display_name="小李")
        aftersales = Label.objects.create(name="售后", color="#e53935")
        mine = conversation_with("我想申请退款怎么办", "<script>alert(1)</script>退款", at=DAY, agent=alice.user,
                                 state=Conversation.State.HUMAN, contact__display_name="李先生",
                                 contact__external_id="wm-li")
        aftersales.conversations.add(mine)
        waiting = conversation_with("发票怎么开", at=DAY + timedelta(hours=1), state=Conversation.State.WAITING_HUMAN,
                                    contact__display_name="=HYPERLINK(\"http://evil\")", contact__external_id="wm-x")
        carols = conversation_with("退款到账了吗", at=DAY + timedelta(days=2), agent=carol.user,
                                   state=Conversation.State.CLOSED, contact__external_id="wm-zhao")
        TicketFactory(conversation=carols, assignee=carol.user)
        bots = conversation_with("退款", at=DAY - timedelta(days=30), contact__external_id="wm-old",
                                 contact__app=WeComAppFactory(kind="kf"))
        index_messages()
    with schema_context("beta"):
        stranger = AgentProfileFactory(user__username="bob", role=AgentProfile.Role.SUPERVISOR)
        theirs = conversation_with("我要退款", at=DAY, contact__external_id="wm-beta")
        index_messages()
    return {"boss": boss, "alice": alice, "carol": carol, "label": aftersales, "mine": mine, "waiting": waiting,
            "carols": carols, "bots": bots, "theirs": theirs, "stranger": stranger}


# -- the page --------------------------------------------------------------------------------------------------

def test_a_supervisor_finds_every_match_and_an_agent_only_what_she_may_open(world):
    boss, alice = client_for("alpha", "boss"), client_for("alpha", "alice")
    assert shown(boss.get(SEARCH, {"q": "退款"})) == [world["carols"].pk, world["mine"].pk, world["bots"].pk]
    assert shown(alice.get(SEARCH, {"q": "退款"})) == [world["mine"].pk]  # not carol's, not the AI's
    assert shown(client_for("alpha", "carol").get(SEARCH, {"q": "退款"})) == [world["carols"].pk]  # her ticket
    everything = shown(alice.get(SEARCH))  # no filter: all she may see
    assert everything == [world["waiting"].pk, world["mine"].pk]
    every = boss.get(SEARCH)  # (ids are per schema: beta's may equal alpha's, its customer may not appear)
    assert len(shown(every)) == 4 and "wm-beta" not in every.content.decode()
    assert shown(client_for("beta", "bob").get("/t/beta/agent/search/", {"q": "退款"})) == [world["theirs"].pk]


def test_each_filter_of_the_page(world):
    boss = client_for("alpha", "boss")
    alice_id, carol_id = world["alice"].user_id, world["carol"].user_id

    def found(**query):
        return shown(boss.get(SEARCH, query))

    assert found(q="申请退款") == [world["mine"].pk]
    assert found(q="退款", customer="李先") == [world["mine"].pk]
    assert found(q="退款", customer="WM-ZHAO") == [world["carols"].pk]
    assert found(agent=carol_id) == [world["carols"].pk]
    assert found(q="退款", agent=alice_id) == [world["mine"].pk]
    assert found(label=world["label"].pk) == [world["mine"].pk]
    assert found(state="waiting_human") == [world["waiting"].pk]
    assert found(q="退款", channel="app") == [world["carols"].pk, world["mine"].pk]
    assert found(q="退款", channel="kf") == [world["bots"].pk]
    assert found(app=world["bots"].contact.app_id) == [world["bots"].pk]
    # Days in the tenant's time zone (Asia/Shanghai): 03-10 covers 02:00 UTC, 03-11 does not.
    assert found(q="退款", **{"from": "2026-03-10", "to": "2026-03-10"}) == [world["mine"].pk]
    assert found(q="退款", **{"from": "2026-03-11"}) == [world["carols"].pk]
    assert found(q="退款", **{"to": "2026-03-09"}) == [world["bots"].pk]


def test_the_snippet_is_escaped_and_marks_the_words(world):
    page = client_for("alpha", "boss").get(SEARCH, {"q": "退款"}).content.decode()
    assert "<script>alert" not in page
    assert "…pt&gt;alert(1)&lt;/script&gt;<mark>退款</mark></td>" in page  # its latest matching line, 20 before
    assert '<mark>退款</mark>到账了吗' in page
    assert "小王" in page and "售后" in page and "李先生" in page
    assert 'href="/t/alpha/agent/search/export.csv?q=%E9%80%80%E6%AC%BE"' in page
    assert f'href="/t/alpha/agent/c/{world["mine"].pk}/"' in page


@pytest.mark.parametrize(("query", "field", "message"), [
    ({"q": "怎么"}, "q", "not only common words"),
    ({"from": "2026-03-12", "to": "2026-03-10"}, "to", "The end date is before the start date."),
    ({"from": "yesterday"}, "from", "Enter a valid date."),
    ({"from": "1900-01-01"}, "from", "Choose a day between 2000 and 2999."),
    ({"agent": "abc"}, "agent", "Select a valid choice."),
    ({"label": "999999"}, "label", "Select a valid choice."),
    ({"state": "open"}, "state", "Select a valid choice."),
    ({"q": "退" * 201}, "q", "at most 200 characters"),
])
def test_bad_filters_are_explained_on_the_page_and_the_export(world, query, field, message):
    boss = client_for("alpha", "boss")
    for url in (SEARCH, EXPORT):
        response = boss.get(url, query, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")
        page = response.content.decode()
        assert f'data-field="{field}">' in page and message in page
        assert shown(response) == []


def test_bad_pages_and_strangers(world):
    boss = client_for("alpha", "boss")
    assert shown(boss.get(SEARCH, {"q": "退款", "page": "999"})) == [world["carols"].pk, world["mine"].pk,
                                                                     world["bots"].pk]  # the last page
    assert boss.get(SEARCH, {"page": "abc"}).status_code == 200
    signed_out = Client().get(SEARCH)
    assert signed_out.status_code == 302 and "/agent/login/" in signed_out["Location"]
    # beta's supervisor, signed in on beta, is nobody on alpha.
    assert Client(headers={"Cookie": f"sessionid={login_cookie('beta', 'bob')}"}).get(SEARCH).status_code == 302


def test_the_page_in_chinese(world):
    page = client_for("alpha", "boss").get(SEARCH, {"q": "怎么"}, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "搜索会话" in page and "请输入至少一个有意义的词" in page
    nothing = client_for("alpha", "boss").get(SEARCH, {"q": "退款 发票"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert nothing.status_code == 200 and "0 个会话" in nothing.content.decode()
    assert "没有符合条件的会话。" in nothing.content.decode() and 'id="export-csv"' not in nothing.content.decode()


# -- the CSV ---------------------------------------------------------------------------------------------------

def test_the_csv_has_a_bom_safe_cells_and_the_readers_rows(world):
    boss = client_for("alpha", "boss")
    response = boss.get(EXPORT, {"q": "退款"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="conversations-')
    header, *lines = rows(response)
    assert header[:3] == ["会话", "链接", "状态"]
    assert [int(line[0]) for line in lines] == [world["carols"].pk, world["mine"].pk, world["bots"].pk]
    mine = lines[1]
    assert mine[1] == f"http://testserver/t/alpha/agent/c/{world['mine'].pk}/"
    assert mine[2:] == ["人工处理中", "自建应用", mine[4], "李先生", "wm-li", "小王", "售后", "2026-03-10 10:00:00",
                        "2026-03-10 10:00:00", "2026-03-10 10:00:00", "客户", "<script>alert(1)</script>退款"]

    # Every cell a spreadsheet would evaluate starts with an apostrophe.
    waiting = rows(boss.get(EXPORT, {"state": "waiting_human"}))[1]
    assert waiting[5] == "'=HYPERLINK(\"http://evil\")"
    with schema_context("alpha"):
        Message.objects.filter(conversation=world["waiting"]).update(text="+cmd|' /C calc'!A0")
        Contact.objects.filter(pk=world["waiting"].contact_id).update(display_name="@SUM(1)", external_id="-2+3")
    waiting = rows(boss.get(EXPORT, {"state": "waiting_human"}))[1]
    assert (waiting[5], waiting[6], waiting[-1]) == ("'@SUM(1)", "'-2+3", "'+cmd|' /C calc'!A0")

    # An agent's export holds what her search shows; beta's holds only beta's.
    assert [int(line[0]) for line in rows(client_for("alpha", "alice").get(EXPORT, {"q": "退款"}))[1:]] == \
        [world["mine"].pk]
    beta = client_for("beta", "bob").get("/t/beta/agent/search/export.csv", {"q": "退款"})
    assert [int(line[0]) for line in rows(beta)[1:]] == [world["theirs"].pk]


def test_the_export_streams_the_iterator_its_server_streams_without_collecting_it(world):
    """gunicorn (WSGI) gets a synchronous iterator, config.asgi an asynchronous one: Django would otherwise gather
    the whole file into a list first, with a warning (made an error here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        wsgi = client_for("alpha", "boss").get(EXPORT, {"q": "退款"})
        assert wsgi.streaming and not wsgi.is_async
        assert len(rows(wsgi)) == 4  # the header and three conversations

        asgi_client = AsyncClient()
        asgi_client.cookies["sessionid"] = login_cookie("alpha", "boss")

        async def export_over_asgi() -> bytes:
            response = await asgi_client.get(EXPORT, {"q": "退款"})
            assert response.streaming and response.is_async
            return b"".join([chunk async for chunk in response])

        body = async_to_sync(export_over_asgi)().decode("utf-8")
    over_wsgi = rows(client_for("alpha", "boss").get(EXPORT, {"q": "退款"}))
    assert list(csv.reader(io.StringIO(body[1:]))) == over_wsgi


def test_an_export_beyond_the_cap_is_refused_with_the_reason(world, monkeypatch):
    monkeypatch.setattr(export, "MAX_EXPORT_ROWS", 2)
    boss = client_for("alpha", "boss")
    refused = boss.get(EXPORT, {"q": "退款"}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    assert "More than 2 conversations match: narrow the filters to export them." in refused.content.decode()
    assert len(rows(boss.get(EXPORT, {"q": "退款", "agent": world["alice"].user_id}))) == 2  # header + 1


def test_safe_cell():
    assert [export.safe_cell(v) for v in ("=1+1", "+1", "-1", "@a", "\tx", "\rx", "a=b", "", 5)] == \
        ["'=1+1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "a=b", "", 5]


# -- the REST API ----------------------------------------------------------------------------------------------

@pytest.fixture
def keys(world):
    made = {}
    for schema, scopes in (("alpha", ["conversations:read"]), ("beta", ["conversations:read"])):
        with schema_context(schema):
            made[schema] = create_api_key(name="search", scopes=scopes)[1]
    with schema_context("alpha"):
        made["narrow"] = create_api_key(name="tickets only", scopes=["tickets:read"])[1]
    return made


def test_the_api_searches_the_whole_tenant_in_pages_and_as_csv(world, keys):
    alpha = api_client(keys["alpha"])
    url = "/t/alpha/api/search/conversations/"
    listing = alpha.get(url, {"q": "退款", "limit": 2})
    assert listing.status_code == 200
    body = listing.json()
    assert body["count"] == 3 and [r["id"] for r in body["results"]] == [world["carols"].pk, world["mine"].pk]
    mine = body["results"][1]
    assert mine["labels"] == [{"id": world["label"].pk, "name": "售后", "color": "#e53935"}]
    assert (mine["agent"], mine["agent_name"], mine["customer_name"], mine["customer_id"], mine["state"]) == \
        (world["alice"].user_id, "小王", "李先生", "wm-li", "human")
    assert mine["message"]["text"] == "<script>alert(1)</script>退款"  # JSON: the client escapes
    start, end = mine["highlights"][0]
    assert mine["snippet"][start:end] == "退款"
    assert [r["id"] for r in alpha.get(url, {"label": world["label"].pk}).json()["results"]] == [world["mine"].pk]

    bad = alpha.get(url, {"q": "怎么", "to": "someday"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid" and set(bad.json()["errors"]) == {"q", "to"}
    assert api_client(keys["narrow"]).get(url, {"q": "退款"}).status_code == 403

    exported = alpha.get("/t/alpha/api/search/conversations/export/", {"q": "退款"})
    assert exported.status_code == 200
    assert [int(line[0]) for line in rows(exported)[1:]] == [world["carols"].pk, world["mine"].pk, world["bots"].pk]
    assert api_client(keys["alpha"]).get("/t/alpha/api/search/conversations/export/", {"q": "怎么"}).status_code == 400

    beta = api_client(keys["beta"])
    assert [r["id"] for r in beta.get("/t/beta/api/search/conversations/", {"q": "退款"}).json()["results"]] == \
        [world["theirs"].pk]
    assert [int(line[0]) for line in rows(beta.get("/t/beta/api/search/conversations/export/"))[1:]] == \
        [world["theirs"].pk]
