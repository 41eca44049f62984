"""微信客服 pulling against the sandbox over HTTP and real PostgreSQL: paging, crashes, tokens, races, tenants."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django_tenants.utils import schema_context

from conversations.models import InboundMessage, KfCursor, TraceEvent, WeComApp
from conversations.services.kf_pull import pull_kf_messages
from conversations.wecom.errors import WeComTransientError
from testing.factories import APP_SECRET, KF_SECRET, WeComAppFactory
from testing.threads import run_in_threads
from testing.vectors import AGENT_ID, CORP_ID, OPEN_KFID
from wecom_sandbox import api as sandbox_api

PENDING, RECORDED = InboundMessage.Status.PENDING, InboundMessage.Status.RECORDED
PAGE_BREAK = {"page_break": True}


# -- the conversation ------------------------------------------------------------------------------


def customer_text(i: int) -> dict:
    return {"external_userid": f"wmCustomer{i % 25:02d}", "msgtype": "text", "text": {"content": f"问题 {i}"}}


def servicer_text(i: int) -> dict:
    return {"external_userid": f"wmCustomer{i % 25:02d}", "msgtype": "text", "text": {"content": f"回复 {i}"},
            "origin": 5, "servicer_userid": "zhangsan"}


def session_event(i: int) -> dict:
    return {"msgtype": "event", "event": {"event_type": "session_status_change", "change_type": 1,
                                          "external_userid": f"wmCustomer{i % 25:02d}",
                                          "new_servicer_userid": "zhangsan"}}


def conversation(count: int, *, start: int = 0, customers: bool = True) -> list[dict]:
    """Customers (origin 3), kf events (origin 4) and a human servicer (origin 5), interleaved."""
    kinds = [customer_text] * 6 + [servicer_text] * 2 + [session_event] * 2
    if not customers:
        kinds = [servicer_text, session_event]
    return [kinds[i % len(kinds)](i) for i in range(start, start + count)]


def paged(*pages: list[dict]) -> list[dict]:
    """Messages with a page break after each page but the last (sync_msg answers has_more=1 there)."""
    items: list[dict] = []
    for page in pages[:-1]:
        items += [*page, PAGE_BREAK]
    return items + pages[-1]


def queue(sandbox, messages: list[dict]) -> tuple[str, list[str]]:
    """Customers write; returns the callback token and the msgids WeCom assigned."""
    queued = sandbox.queue_kf_messages(CORP_ID, OPEN_KFID, messages, notify=False)
    return queued["token"], queued["msgids"]


def pulled_keys(app: WeComApp) -> list[str]:
    return list(InboundMessage.objects.filter(app=app, source=InboundMessage.Source.KF_PULL)
                .values_list("natural_key", flat=True))


def keys_of(msgids: list[str]) -> set[str]:
    return {f"kf:{msgid}" for msgid in msgids}


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def kf_sandbox(sandbox):
    # kf APIs want the 微信客服 secret: a secret shared with an app yields that app's token (48002).
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": APP_SECRET}],
                        kf_accounts=[{"open_kfid": OPEN_KFID, "secret": KF_SECRET}])
    return sandbox


@pytest.fixture
def clean_token(redis_client):
    """Forget the cached token of an app (keys outlive rolled-back rows whose pk may come back)."""
    apps: list[tuple[str, WeComApp]] = []

    def forget(schema: str, app: WeComApp) -> WeComApp:
        apps.append((schema, app))
        redis_client.delete(f"{schema}:wecom:token:{app.pk}")
        return app

    yield forget
    for schema, app in apps:
        redis_client.delete(f"{schema}:wecom:token:{app.pk}")


@pytest.fixture
def kf_app(db, tenant_a, kf_sandbox, clean_token) -> WeComApp:
    """Alpha's 微信客服 connection, inside the test transaction."""
    with schema_context("alpha"):
        return clean_token("alpha", WeComAppFactory(kind="kf"))


@pytest.fixture
def sync_requests(monkeypatch) -> list[dict]:
    """Each kf/sync_msg request the sandbox answered and its answer (the sandbox's call log has no bodies)."""
    seen: list[dict] = []
    answer_sync_msg = sandbox_api.ROUTES["kf/sync_msg"]

    def recording(state, grant, body):
        answer = answer_sync_msg(state, grant, body)
        seen.append({"cursor": body.get("cursor"), "token": body.get("token"), "errcode": answer["errcode"],
                     "next_cursor": answer.get("next_cursor"), "has_more": answer.get("has_more"),
                     "messages": len(answer.get("msg_list") or [])})
        return answer

    monkeypatch.setitem(sandbox_api.ROUTES, "kf/sync_msg", recording)
    return seen


def pull(app: WeComApp, **kwargs) -> int:
    with schema_context("alpha"):
        return pull_kf_messages(app=app, open_kfid=OPEN_KFID, **kwargs)


# -- paging --------------------------------------------------------------------------------------------


def test_a_2500_message_conversation_is_stored_once_over_several_pulls(kf_app, kf_sandbox, sync_requests,
                                                                       django_capture_on_commit_callbacks):
    # Given 1,200 messages in pages of 400 with an empty has_more=1 page among them...
    first = conversation(1200)
    token1, msgids1 = queue(kf_sandbox, paged(first[:400], first[400:800], [], first[800:]))

    with django_capture_on_commit_callbacks() as enqueues:
        # When the first callback's pull runs
        stored_first = pull(kf_app, token=token1)

        # ...and then 1,300 more messages arrive, more than one sync_msg page holds, and are pulled
        second = conversation(1300, start=1200)
        token2, msgids2 = queue(kf_sandbox, second)
        stored_second = pull(kf_app, token=token2)

    # Then sync_msg was followed past the empty page, to has_more=0, with each callback's token
    assert [(r["messages"], r["has_more"], r["token"]) for r in sync_requests] == [
        (400, 1, token1), (400, 1, token1), (0, 1, token1), (400, 0, token1),
        (1000, 1, token2), (300, 0, token2)]
    assert [r["cursor"] for r in sync_requests] == [None] + [r["next_cursor"] for r in sync_requests[:-1]]
    assert (stored_first, stored_second) == (1200, 1300)
    with schema_context("alpha"):
        # and every msgid is stored exactly once
        keys = pulled_keys(kf_app)
        assert len(keys) == 2500
        assert set(keys) == keys_of(msgids1 + msgids2)
        # customers' messages wait for the AI; events and a human servicer's messages are only recorded
        by_origin = Counter(InboundMessage.objects.filter(app=kf_app).values_list("origin", "msg_type", "status"))
        assert by_origin == {(3, "text", PENDING): 1500, (4, "event", RECORDED): 500, (5, "text", RECORDED): 500}
        assert len(enqueues) == 1500  # one processing job per customer message, none for the rest
        # and the cursor holds the last next_cursor
        cursor = KfCursor.objects.get(app=kf_app, open_kfid=OPEN_KFID)
        assert (cursor.cursor, cursor.pulls) == (sync_requests[-1]["next_cursor"], 6)


def test_a_pull_dies_between_pages_and_the_next_pull_resumes_from_the_saved_cursor(kf_app, kf_sandbox,
                                                                                  sync_requests,
                                                                                  django_capture_on_commit_callbacks):
    # Given five pages of 60 messages, and WeCom failing with HTTP 500 on the third page
    pages = [conversation(60, start=60 * n) for n in range(5)]
    token, msgids = queue(kf_sandbox, paged(*pages))
    # Faults apply in order: two that change nothing, then the 500.
    kf_sandbox.inject_fault("kf/sync_msg", count=2)
    kf_sandbox.inject_fault("kf/sync_msg", http_status=500)

    # When the pull runs, it dies
    with django_capture_on_commit_callbacks() as enqueues, pytest.raises(WeComTransientError) as raised:
        pull(kf_app, token=token)

    # Then the two pages before the crash are stored (and their customer messages enqueued) and the cursor saved
    assert raised.value.errmsg == "HTTP 500"
    assert len(enqueues) == 72
    with schema_context("alpha"):
        assert set(pulled_keys(kf_app)) == keys_of(msgids[:120])
        cursor = KfCursor.objects.get(app=kf_app, open_kfid=OPEN_KFID)
        assert (cursor.cursor, cursor.pulls) == (sync_requests[1]["next_cursor"], 2)
    saved = cursor.cursor

    # When the pull runs again
    assert pull(kf_app, token=token) == 180

    # Then it started from the saved cursor and each message is stored exactly once
    assert [c["http_status"] for c in kf_sandbox.calls(path="kf/sync_msg")] == [200, 200, 500, 200, 200, 200]
    assert [r["cursor"] for r in sync_requests] == [None, sync_requests[0]["next_cursor"], saved,
                                                    sync_requests[2]["next_cursor"],
                                                    sync_requests[3]["next_cursor"]]
    with schema_context("alpha"):
        keys = pulled_keys(kf_app)
        assert len(keys) == 300
        assert set(keys) == keys_of(msgids)


def test_an_expired_callback_token_falls_back_to_pulling_without_it(kf_app, kf_sandbox, sync_requests):
    # Given a callback whose token is older than its 10 minutes
    token, msgids = queue(kf_sandbox, paged(conversation(50), conversation(50, start=50)))
    kf_sandbox.advance_clock(601)

    # When the pull runs with it
    stored = pull(kf_app, token=token)

    # Then WeCom refused the token (95007) once and the pull went on without it
    assert [(r["token"], r["errcode"], r["cursor"]) for r in sync_requests] == [
        (token, 95007, None), (None, 0, None), (None, 0, sync_requests[1]["next_cursor"])]
    assert stored == 100
    with schema_context("alpha"):
        assert set(pulled_keys(kf_app)) == keys_of(msgids)


def test_a_second_pull_with_nothing_new_stores_nothing(kf_app, kf_sandbox, sync_requests,
                                                       django_capture_on_commit_callbacks):
    # Given everything was pulled
    token, msgids = queue(kf_sandbox, conversation(30))
    assert pull(kf_app, token=token) == 30
    with schema_context("alpha"):
        cursor = KfCursor.objects.get(app=kf_app, open_kfid=OPEN_KFID).cursor
        traces = TraceEvent.objects.filter(inbound__app=kf_app).count()

    # When a pull runs again
    with django_capture_on_commit_callbacks() as enqueues:
        stored = pull(kf_app)

    # Then it asked from the saved cursor, got nothing, changed nothing and enqueued nothing
    assert (stored, enqueues) == (0, [])
    assert sync_requests[-1] == {"cursor": cursor, "token": None, "errcode": 0, "next_cursor": cursor,
                                 "has_more": 0, "messages": 0}
    with schema_context("alpha"):
        assert set(pulled_keys(kf_app)) == keys_of(msgids)
        assert KfCursor.objects.get(app=kf_app, open_kfid=OPEN_KFID).cursor == cursor
        assert TraceEvent.objects.filter(inbound__app=kf_app).count() == traces


def test_pulling_again_from_a_lost_cursor_stores_nothing_twice(kf_app, kf_sandbox,
                                                               django_capture_on_commit_callbacks):
    # Given everything was pulled, and then the cursor was lost
    token, msgids = queue(kf_sandbox, paged(conversation(40), conversation(40, start=40)))
    assert pull(kf_app, token=token) == 80
    with schema_context("alpha"):
        KfCursor.objects.filter(app=kf_app).update(cursor="")

    # When the pull starts over from the beginning
    with django_capture_on_commit_callbacks() as enqueues:
        stored = pull(kf_app)

    # Then every message is seen again but stored (and enqueued) once, the second sighting traced as a duplicate
    assert (stored, enqueues) == (0, [])
    with schema_context("alpha"):
        assert sorted(pulled_keys(kf_app)) == sorted(keys_of(msgids))
        assert TraceEvent.objects.filter(inbound__app=kf_app, stage="duplicate").count() == 80


# -- concurrency ---------------------------------------------------------------------------------------


@pytest.fixture
def committed_kf_app(committed_app, tenant_a, kf_sandbox, clean_token):
    """Alpha's 微信客服 connection committed, so pullers on other threads see it; removed afterwards."""
    return clean_token("alpha", committed_app("alpha", kind="kf", name="committed kf"))


def test_two_pullers_of_one_account_never_send_a_cursor_twice(committed_kf_app, kf_sandbox, sync_requests):
    # Given twelve pages of 50 messages (events and servicer messages: nothing is enqueued from here)
    pages = [conversation(50, start=50 * n, customers=False) for n in range(12)]
    token, msgids = queue(kf_sandbox, paged(*pages))
    start = threading.Barrier(2)

    def puller() -> int:
        with schema_context("alpha"):
            start.wait(timeout=10)
            return pull_kf_messages(app=committed_kf_app, open_kfid=OPEN_KFID, token=token)

    # When two pullers of the same open_kfid run at once
    stored = run_in_threads(puller, puller, timeout=60)

    # Then no cursor went to WeCom twice, and each message is stored once
    cursors = [r["cursor"] for r in sync_requests]
    assert len(cursors) == len(set(cursors))
    assert {r["messages"] for r in sync_requests} <= {0, 50}
    assert sum(r["messages"] for r in sync_requests) == 600
    assert sum(stored) == 600
    with schema_context("alpha"):
        keys = list(InboundMessage.objects.filter(app=committed_kf_app).values_list("natural_key", flat=True))
        assert len(keys) == 600
        assert set(keys) == keys_of(msgids)
        assert KfCursor.objects.get(app=committed_kf_app).cursor == sync_requests[-1]["next_cursor"]


# -- tenancy -------------------------------------------------------------------------------------------


def test_pulling_for_alpha_stores_nothing_in_beta(kf_app, kf_sandbox, tenant_b, clean_token):
    # Given beta connected the same 微信客服 account
    with schema_context("beta"):
        beta_app = clean_token("beta", WeComAppFactory(kind="kf"))
        before = (InboundMessage.objects.count(), KfCursor.objects.count(), TraceEvent.objects.count())
    token, msgids = queue(kf_sandbox, conversation(20))

    # When alpha pulls
    assert pull(kf_app, token=token) == 20

    # Then alpha has the messages and beta has nothing new
    with schema_context("alpha"):
        assert set(pulled_keys(kf_app)) == keys_of(msgids)
    with schema_context("beta"):
        assert (InboundMessage.objects.count(), KfCursor.objects.count(), TraceEvent.objects.count()) == before

    # When beta pulls afterwards, it starts from its own cursor and gets its own copy
    with schema_context("beta"):
        assert pull_kf_messages(app=beta_app, open_kfid=OPEN_KFID) == 20
        assert set(InboundMessage.objects.filter(app=beta_app).values_list("natural_key", flat=True)) == \
            keys_of(msgids)
    with schema_context("alpha"):
        assert set(pulled_keys(kf_app)) == keys_of(msgids)
