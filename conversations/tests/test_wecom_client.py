"""The WeCom API client against the sandbox over HTTP: token cache, single flight, refresh, typed errors."""

from __future__ import annotations

import threading

import pytest
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from conversations.wecom import client as client_module
from conversations.wecom.client import WeComClient, _http, forget_held_tokens
from conversations.wecom.errors import WeComPermanentError, WeComTokenError, WeComTransientError
from testing.factories import WeComAppFactory
from testing.threads import run_in_threads
from testing.vectors import AGENT_ID, CORP_ID
from testing.waiting import wait_until

pytestmark = pytest.mark.django_db

BETA_CORP_ID = "wwbetacorp00000001"
BETA_SECRET = "app-secret-beta"


def token_key(schema: str, app: WeComApp) -> str:
    return f"{schema}:wecom:token:{app.pk}"


def client_for(app: WeComApp, schema: str = "alpha") -> WeComClient:
    # The client takes its Redis keys from the schema it is built in, as a worker would.
    with schema_context(schema):
        return WeComClient(app)


def api_calls(sandbox) -> list[tuple[str, int | None]]:
    return [(call["path"], call["errcode"]) for call in sandbox.calls()]


@pytest.fixture
def app(tenant_a, sandbox, redis_client):
    """Alpha's self-built app, with no token cached (keys outlive the rolled-back rows)."""
    with schema_context("alpha"):
        app = WeComAppFactory()
    redis_client.delete(token_key("alpha", app))
    yield app
    redis_client.delete(token_key("alpha", app))


@pytest.fixture
def short_http_timeout(settings):
    # The pooled httpx client is built once per process; rebuild it around the changed timeout.
    settings.WECOM_HTTP_TIMEOUT_SECONDS = 0.3
    _http.cache_clear()
    yield
    _http.cache_clear()


# -- the token cache -------------------------------------------------------------------------------


def test_access_token_is_fetched_once_and_cached_under_the_tenant_schema(app, sandbox, redis_client):
    # Given an empty cache
    # When two clients of the app ask for a token
    first = client_for(app).access_token()
    second = client_for(app).access_token()

    # Then one gettoken was made and the token sits under "<schema>:wecom:token:<app pk>"
    assert second == first
    assert api_calls(sandbox) == [("gettoken", 0)]
    assert redis_client.get(token_key("alpha", app)) == first.encode()
    # WeCom's 7200 s minus the 300 s safety margin.
    assert 6890 <= redis_client.ttl(token_key("alpha", app)) <= 6900


def test_the_process_keeps_the_token_it_read_for_as_long_as_redis_keeps_it(app, sandbox, redis_client):
    # Given another process fetched the token, which Redis keeps for 1 more second
    client_for(app).access_token()
    forget_held_tokens()  # as if it had been another process
    redis_client.pexpire(token_key("alpha", app), 1000)

    # When this process reads it and then Redis loses it
    read = client_for(app).access_token()
    redis_client.delete(token_key("alpha", app))

    # Then this process goes on with its copy, asking WeCom nothing
    assert client_for(app).send_text(touser="zhangsan", content="您好")["errcode"] == 0
    assert client_module._held[(token_key("alpha", app), app.corp_id)][0] == read
    assert api_calls(sandbox) == [("gettoken", 0), ("message/send", 0)]

    # ... until the moment Redis would have dropped it: then it fetches a token again
    wait_until(lambda: client_for(app).access_token() and len(sandbox.calls()) == 3, timeout=5,
               message="a new gettoken once the copy's second is over")
    assert api_calls(sandbox)[-1] == ("gettoken", 0)


def test_apps_with_the_same_pk_in_two_tenants_have_separate_tokens(app, sandbox, tenant_b, redis_client):
    # Given beta's app has alpha's app's pk but belongs to another corp
    sandbox.create_corp(BETA_CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": BETA_SECRET}])
    with schema_context("beta"):
        beta_app = WeComAppFactory.build(pk=app.pk, name="beta app", corp_id=BETA_CORP_ID, secret=BETA_SECRET)
        beta_app.save(force_insert=True)  # saved directly: the service cannot choose the pk
    redis_client.delete(token_key("beta", beta_app))

    try:
        # When each tenant's client asks for its token (twice)
        alpha_token = client_for(app, "alpha").access_token()
        beta_token = client_for(beta_app, "beta").access_token()
        again = (client_for(app, "alpha").access_token(), client_for(beta_app, "beta").access_token())

        # Then each tenant fetched its own token once, under its own key
        assert alpha_token != beta_token
        assert again == (alpha_token, beta_token)
        assert [(c["path"], c["corp_id"]) for c in sandbox.calls()] == [
            ("gettoken", CORP_ID), ("gettoken", BETA_CORP_ID)]
        assert redis_client.get(token_key("alpha", app)) == alpha_token.encode()
        assert redis_client.get(token_key("beta", beta_app)) == beta_token.encode()
    finally:
        redis_client.delete(token_key("beta", beta_app))


@pytest.mark.parametrize("locks", ["one process", "one process per thread"])
def test_fifty_threads_with_an_empty_cache_make_one_gettoken(app, sandbox, monkeypatch, locks):
    # Given an empty cache and a slow gettoken, so every thread finds the cache empty
    sandbox.inject_fault("gettoken", delay=0.3)
    if locks == "one process per thread":
        # No shared in-process lock: only the Redis lock can keep the threads to one fetch.
        monkeypatch.setattr(client_module, "_local_lock", lambda key: threading.Lock())
    start = threading.Barrier(50)

    def fetch_token() -> str:
        client = client_for(app)
        start.wait(timeout=10)
        return client.access_token()

    # When 50 threads ask for the token at once
    tokens = run_in_threads(*[fetch_token] * 50, timeout=60)

    # Then WeCom saw exactly one gettoken and everybody got its token
    assert api_calls(sandbox) == [("gettoken", 0)]
    assert len(tokens) == 50
    assert set(tokens) == {tokens[0]}


# -- refused tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["fault 42001", "fault 40014", "revoked 40014", "expired 42001"])
def test_a_refused_token_is_refreshed_once_and_the_call_succeeds(app, sandbox, redis_client, refusal):
    # Given a cached token that WeCom will refuse once
    client = client_for(app)
    old_token = client.access_token()
    if refusal.startswith("fault"):
        sandbox.inject_fault("message/send", errcode=int(refusal.split()[1]))
    elif refusal.startswith("revoked"):
        sandbox.invalidate_tokens(CORP_ID)
    else:
        sandbox.advance_clock(7201)  # the token died at WeCom while still in our cache
    refused_with = int(refusal.split()[1])

    # When the app sends a message
    result = client.send_text(touser="zhangsan", content="您好")

    # Then the token was refetched once and the message delivered once
    assert result["errcode"] == 0
    assert api_calls(sandbox) == [("gettoken", 0), ("message/send", refused_with), ("gettoken", 0),
                                  ("message/send", 0)]
    assert sandbox.received_texts("zhangsan") == ["您好"]
    new_token = redis_client.get(token_key("alpha", app)).decode()
    if refusal.startswith("fault"):
        assert new_token == old_token  # WeCom hands out the same live token again
    else:
        assert new_token != old_token


@pytest.mark.parametrize("errcode", [42001, 40014])
def test_a_token_refused_again_after_the_refresh_raises_token_error(app, sandbox, errcode):
    # Given WeCom refuses the token twice in a row
    client = client_for(app)
    client.access_token()
    sandbox.inject_fault("message/send", errcode=errcode, count=2)

    # When the app sends a message
    with pytest.raises(WeComTokenError) as raised:
        client.send_text(touser="zhangsan", content="您好")

    # Then it gave up after one refresh and nothing was delivered
    assert raised.value.errcode == errcode
    assert api_calls(sandbox) == [("gettoken", 0), ("message/send", errcode), ("gettoken", 0),
                                  ("message/send", errcode)]
    assert sandbox.deliveries() == []


def test_gettoken_with_a_wrong_secret_raises_token_error_and_caches_nothing(tenant_a, sandbox, redis_client):
    # Given an app whose secret WeCom does not know
    with schema_context("alpha"):
        app = WeComAppFactory(secret="not-the-secret")
    redis_client.delete(token_key("alpha", app))
    client = client_for(app)

    # When it asks for a token, or tries to send
    with pytest.raises(WeComTokenError) as raised:
        client.access_token()
    with pytest.raises(WeComTokenError):
        client.send_text(touser="zhangsan", content="您好")

    # Then gettoken said 40001, no token was cached and no message/send was attempted
    assert raised.value.errcode == 40001
    assert api_calls(sandbox) == [("gettoken", 40001), ("gettoken", 40001)]
    assert redis_client.exists(token_key("alpha", app)) == 0
    assert sandbox.deliveries() == []


def test_gettoken_system_busy_is_transient_not_a_token_error(app, sandbox, redis_client):
    sandbox.inject_fault("gettoken", errcode=-1)

    with pytest.raises(WeComTransientError) as raised:
        client_for(app).access_token()

    assert raised.value.errcode == -1
    assert redis_client.exists(token_key("alpha", app)) == 0


# -- typed errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("errcode", [-1, 45009, 45033])
def test_busy_and_rate_limit_errcodes_raise_transient_error(app, sandbox, redis_client, errcode):
    # Given a cached token and WeCom answering the next send with errcode
    client = client_for(app)
    token = client.access_token()
    sandbox.inject_fault("message/send", errcode=errcode)

    # When the app sends a message
    with pytest.raises(WeComTransientError) as raised:
        client.send_text(touser="zhangsan", content="您好")

    # Then the error carries the errcode, the call was not repeated and the token was kept
    assert raised.value.errcode == errcode
    assert api_calls(sandbox) == [("gettoken", 0), ("message/send", errcode)]
    assert redis_client.get(token_key("alpha", app)) == token.encode()
    assert sandbox.deliveries() == []


@pytest.mark.parametrize("status", [500, 502])
def test_http_5xx_raises_transient_error(app, sandbox, status):
    client = client_for(app)
    client.access_token()
    sandbox.inject_fault("message/send", http_status=status)

    with pytest.raises(WeComTransientError) as raised:
        client.send_text(touser="zhangsan", content="您好")

    assert (raised.value.errcode, raised.value.errmsg) == (None, f"HTTP {status}")
    assert [(c["path"], c["http_status"]) for c in sandbox.calls()] == [("gettoken", 200), ("message/send", status)]
    assert sandbox.deliveries() == []


def test_timeout_raises_transient_error_and_the_retry_is_not_delivered_twice(app, sandbox, short_http_timeout):
    # Given WeCom answers the next send only after 1 s, beyond our 0.3 s timeout
    client = client_for(app)
    client.access_token()
    sandbox.inject_fault("message/send", delay=1.0)

    # When the app sends a message
    with pytest.raises(WeComTransientError) as raised:
        client.send_text(touser="zhangsan", content="您好")

    # Then it is a transient timeout without errcode...
    assert raised.value.errcode is None
    assert raised.value.errmsg == "timeout: ReadTimeout"
    # ...although WeCom did deliver it: a timeout says nothing about delivery
    wait_until(lambda: sandbox.deliveries(user="zhangsan"), timeout=5, message="the late delivery")
    # and the identical retry is suppressed by WeCom's duplicate check.
    client.send_text(touser="zhangsan", content="您好")
    assert sandbox.received_texts("zhangsan") == ["您好"]
    assert [d["duplicate"] for d in sandbox.deliveries(user="zhangsan")] == [False, True]


def test_all_recipients_invalid_raises_permanent_error_81013(app, sandbox):
    # Given the corp has one member, zhangsan
    sandbox.set_members(CORP_ID, ["zhangsan"])
    client = client_for(app)

    # When the app sends to somebody else
    with pytest.raises(WeComPermanentError) as raised:
        client.send_text(touser="nobody", content="您好")

    # Then WeCom refused it for good and delivered nothing
    assert raised.value.errcode == 81013
    assert api_calls(sandbox) == [("gettoken", 0), ("message/send", 81013)]
    assert sandbox.deliveries() == []


# -- message/send ---------------------------------------------------------------------------------------


def test_send_text_asks_wecom_to_drop_an_identical_resend(app, sandbox):
    client = client_for(app)

    first = client.send_text(touser="zhangsan", content="订单已发货")
    second = client.send_text(touser="zhangsan", content="订单已发货")
    other = client.send_text(touser="zhangsan", content="明天到")

    assert second["msgid"] == first["msgid"] != other["msgid"]
    assert sandbox.received_texts("zhangsan") == ["订单已发货", "明天到"]
    assert [(d["content"], d["duplicate"]) for d in sandbox.deliveries(user="zhangsan")] == [
        ("订单已发货", False), ("订单已发货", True), ("明天到", False)]
