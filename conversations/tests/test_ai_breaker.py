"""The per-tenant circuit breaker in Redis: opening, failing fast, half-open probes, sharing, isolation.

The breaker's clock is frozen for every test here and moved by hand: recovery times pass without
sleeping, and opening times and waits are exact.
"""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from conversations.ai import breaker
from conversations.ai.breaker import BreakerOpen, breaker_state, call_with_breaker, reset_breaker
from conversations.ai.llm import LLMBadResponse, LLMTimeout, complete
from conversations.ai.models import AIProvider
from conversations.ai.services import ask_ai
from testing.processes import ROOT, free_port, live_env
from testing.threads import run_in_threads
from testing.waiting import wait_until

ALPHA_KEY, BETA_KEY = "sk-alpha-breaker-0001", "sk-beta-breaker-0002"
KNOWLEDGE = [("怎么退货？", "七天内可以无理由退货。", 0.9)]
RESET_TIMEOUT = 1.0
pytestmark = pytest.mark.usefixtures("clean_breakers", "clock")


class FrozenClock:
    """Stands still until advanced; whole seconds to start, so opening times and waits compare exactly."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FrozenClock:
    frozen = FrozenClock(float(int(time.time())))
    monkeypatch.setattr(breaker, "clock", frozen)
    return frozen


def make_provider(fake_model, key=ALPHA_KEY, **overrides) -> AIProvider:
    # A generous timeout: a loaded CI machine must not turn an expected 503 or answer into a timeout.
    fields = dict(base_url=fake_model.model_base_url, model="sandbox-chat", api_key=key, timeout_seconds=5,
                  max_tokens=256, breaker_fail_max=3, breaker_reset_timeout_seconds=RESET_TIMEOUT)
    fields.update(overrides)
    return AIProvider(**fields)


def ask(provider, schema="alpha"):
    """One guarded call in the tenant's schema, as the answering pipeline makes it."""
    with schema_context(schema):
        return call_with_breaker(provider, complete, provider, context=[], question="怎么退货？", knowledge=KNOWLEDGE,
                                 tenant_name=f"{schema} Ltd")


def fail(provider, times, schema="alpha", error=LLMBadResponse):
    for _ in range(times):
        with pytest.raises(error):
            ask(provider, schema)


def open_breaker(fake_model, provider, schema="alpha"):
    fake_model.model_fail_next(provider.breaker_fail_max, status=503, api_key=provider.api_key)
    fail(provider, provider.breaker_fail_max, schema)
    assert breaker_state(schema)["state"] == "open"


def test_opens_after_fail_max_consecutive_failures_then_fails_fast(fake_model, clock):
    provider = make_provider(fake_model, breaker_reset_timeout_seconds=30)
    fake_model.model_configure(available=False)
    fail(provider, 2)
    assert breaker_state("alpha")["state"] == "closed" and breaker_state("alpha")["fail_counter"] == 2

    clock.advance(5)
    fail(provider, 1)  # the third failure opens the breaker and still raises its own error
    state = breaker_state("alpha")
    assert (state["state"], state["fail_counter"], state["probe_in_flight"]) == ("open", 3, False)
    assert state["opened_at"] == datetime.fromtimestamp(clock.now, UTC)

    clock.advance(12)
    started = time.monotonic()
    with pytest.raises(BreakerOpen) as fast:
        ask(provider)
    assert time.monotonic() - started < 0.2
    assert fast.value.schema == "alpha" and fast.value.retry_after == 30 - 12
    assert len(fake_model.model_calls()) == 3  # the fourth call never reached the model


def test_a_success_resets_the_consecutive_count(fake_model):
    provider = make_provider(fake_model)
    fake_model.model_fail_next(2, status=500)
    fail(provider, 2)
    assert ask(provider).text == "根据资料：七天内可以无理由退货。"
    assert breaker_state("alpha")["fail_counter"] == 0
    fake_model.model_fail_next(2, status=500)
    fail(provider, 2)
    assert breaker_state("alpha") | {"opened_at": None} == {
        "state": "closed", "fail_counter": 2, "opened_at": None, "probe_in_flight": False}
    assert len(fake_model.model_calls()) == 5


def test_a_success_on_a_clean_closed_breaker_costs_one_redis_command(fake_model, monkeypatch):
    provider = make_provider(fake_model)
    assert ask(provider).text  # the breaker's keys exist now
    client = breaker.redis_client()
    commands = []

    class Counting:
        def __getattr__(self, name):
            commands.append(name)
            return getattr(client, name)

    monkeypatch.setattr(breaker, "redis_client", lambda: Counting())
    assert ask(provider).text == "根据资料：七天内可以无理由退货。"
    assert commands == ["mget"]

    # and a failure still goes through pybreaker's count
    fake_model.model_fail_next(1, status=503)
    fail(provider, 1)
    assert breaker_state("alpha")["fail_counter"] == 1


def test_timeouts_count_as_failures(fake_model):
    provider = make_provider(fake_model, timeout_seconds=0.2)
    fake_model.model_configure(latency=1)
    fail(provider, 3, error=LLMTimeout)
    assert breaker_state("alpha")["state"] == "open"
    with pytest.raises(BreakerOpen):
        ask(provider)
    assert len(fake_model.model_calls()) == 3


def test_request_specific_errors_do_not_open_it(fake_model):
    provider = make_provider(fake_model)
    fake_model.model_fail_next(5, status=400)
    fail(provider, 5)
    assert breaker_state("alpha")["state"] == "closed" and breaker_state("alpha")["fail_counter"] == 0


def test_half_opens_after_the_recovery_time_and_closes_on_success(fake_model, clock):
    provider = make_provider(fake_model)
    open_breaker(fake_model, provider)
    with pytest.raises(BreakerOpen):
        ask(provider)
    clock.advance(RESET_TIMEOUT - 0.001)
    with pytest.raises(BreakerOpen) as almost:
        ask(provider)  # a millisecond early: still open, no probe
    assert almost.value.retry_after == pytest.approx(0.001, abs=1e-6)  # float epoch seconds: ~0.2 µs steps
    assert breaker_state("alpha")["state"] == "open" and len(fake_model.model_calls()) == 3
    clock.advance(0.001)

    assert ask(provider).text == "根据资料：七天内可以无理由退货。"  # the probe reached the (recovered) model
    state = breaker_state("alpha")
    assert (state["state"], state["fail_counter"], state["probe_in_flight"]) == ("closed", 0, False)
    assert ask(provider).cannot_answer is False
    assert [c["outcome"] for c in fake_model.model_calls()] == ["fault:http_error:503"] * 3 + ["answered"] * 2


def test_a_failed_probe_opens_it_again_for_a_new_recovery_time(fake_model, clock):
    provider = make_provider(fake_model)
    open_breaker(fake_model, provider)
    first_opened = breaker_state("alpha")["opened_at"]
    clock.advance(RESET_TIMEOUT)
    fake_model.model_fail_next(1, status=502)

    fail(provider, 1)  # the probe: reaches the model, fails with its own error
    state = breaker_state("alpha")
    assert state["state"] == "open" and not state["probe_in_flight"]
    assert state["opened_at"] == datetime.fromtimestamp(clock.now, UTC)
    assert (state["opened_at"] - first_opened).total_seconds() == RESET_TIMEOUT
    with pytest.raises(BreakerOpen) as again:
        ask(provider)
    assert again.value.retry_after == RESET_TIMEOUT  # a whole new recovery time from the failed probe
    assert len(fake_model.model_calls()) == 4


def test_only_one_probe_at_a_time(fake_model, clock):
    provider = make_provider(fake_model)
    open_breaker(fake_model, provider)
    clock.advance(RESET_TIMEOUT)
    fake_model.model_configure(latency=1.5)

    def second_caller():
        wait_until(lambda: len(fake_model.model_calls()) == 4, timeout=5, message="the probe call")
        with pytest.raises(BreakerOpen, match="probe call is already in flight"):
            ask(provider)  # a second caller (another thread here; any process alike) fails fast
        return breaker_state("alpha")

    probe_answer, state_during_probe = run_in_threads(lambda: ask(provider), second_caller, timeout=15)
    assert (state_during_probe["state"], state_during_probe["probe_in_flight"]) == ("half-open", True)
    assert probe_answer.text == "根据资料：七天内可以无理由退货。"
    assert breaker_state("alpha")["state"] == "closed" and breaker_state("alpha")["probe_in_flight"] is False
    assert len(fake_model.model_calls()) == 4


CHILD = """
import json, django
django.setup()
from django_tenants.utils import schema_context
from conversations.ai.breaker import breaker_state
from conversations.ai.models import AIProvider
from conversations.ai.services import ask_ai
from conversations.ai.llm import LLMError
provider = AIProvider(base_url={base_url!r}, model="sandbox-chat", api_key={key!r}, timeout_seconds=5,
                      breaker_fail_max=3, breaker_reset_timeout_seconds=30)
errors = []
with schema_context("alpha"):
    for _ in range(4):
        try:
            ask_ai(provider=provider, context=[], question="q", knowledge=[])
        except LLMError as exc:
            errors.append(type(exc).__name__)
print(json.dumps({{"errors": errors, "state": breaker_state("alpha")["state"]}}))
"""


@pytest.mark.live
def test_the_state_is_shared_across_processes(fake_model, tenants_world):
    """A worker process opens alpha's breaker; this process then fails fast without calling the model."""
    fake_model.model_configure(available=False)
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(base_url=fake_model.model_base_url, key=ALPHA_KEY)],
        cwd=ROOT, env=live_env(TEST_REDIS_DB=str(settings.TEST_REDIS_DB)), capture_output=True, text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report == {"errors": ["LLMBadResponse"] * 3 + ["BreakerOpen"], "state": "open"}, child.stderr
    assert len(fake_model.model_calls()) == 3

    fake_model.model_configure(available=True)
    same_row = make_provider(fake_model, breaker_reset_timeout_seconds=30)  # both processes read one row
    with schema_context("alpha"), pytest.raises(BreakerOpen):
        ask_ai(provider=same_row, context=[], question="q", knowledge=[])
    assert len(fake_model.model_calls()) == 3


def test_tenants_have_their_own_breakers(fake_model, redis_client):
    alpha, beta = make_provider(fake_model), make_provider(fake_model, key=BETA_KEY)
    open_breaker(fake_model, alpha, "alpha")

    assert ask(beta, "beta").text == "根据资料：七天内可以无理由退货。"
    assert breaker_state("beta") == {"state": "closed", "fail_counter": 0, "opened_at": None,
                                     "probe_in_flight": False}
    with pytest.raises(BreakerOpen):
        ask(alpha, "alpha")
    assert breaker_state("alpha")["state"] == "open"
    assert [c["outcome"] for c in fake_model.model_calls(api_key=BETA_KEY)] == ["answered"]
    keys = {k.decode() for k in redis_client.scan_iter("*ai:breaker*")}
    assert keys and all(k.startswith(("alpha:ai:breaker:", "beta:ai:breaker:")) for k in keys)


def test_a_manual_reset_closes_it(fake_model):
    provider = make_provider(fake_model, breaker_reset_timeout_seconds=30)
    open_breaker(fake_model, provider)
    reset_breaker("alpha")
    assert breaker_state("alpha") == {"state": "closed", "fail_counter": 0, "opened_at": None,
                                      "probe_in_flight": False}
    assert ask(provider).cannot_answer is False
    assert len(fake_model.model_calls()) == 4


def test_without_redis_calls_go_through_unguarded(fake_model, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    provider = make_provider(fake_model)
    assert ask(provider).text == "根据资料：七天内可以无理由退货。"
    fake_model.model_configure(available=False)
    fail(provider, 5)  # never opens: there is nowhere to keep the state
    assert breaker_state("alpha") == {"state": "unknown", "fail_counter": None, "opened_at": None,
                                      "probe_in_flight": None}
    assert len(fake_model.model_calls()) == 6


def test_there_is_no_breaker_outside_a_tenant(fake_model):
    provider = make_provider(fake_model)
    with pytest.raises(ValueError, match="per tenant"):
        call_with_breaker(provider, complete, provider, context=[], question="q", knowledge=[], tenant_name="x")
    with pytest.raises(ValueError):
        reset_breaker("public")
    assert fake_model.model_calls() == []


def test_an_unused_breaker_reads_closed():
    assert breaker_state("alpha") == {"state": "closed", "fail_counter": 0, "opened_at": None,
                                      "probe_in_flight": False}
