"""The log context of each entry point: what its lines carry, and that nothing of one request, connection,
job or scheduler run is left for the next (HTTP, WebSocket, Dramatiq, scheduler, commands, I/O pool)."""

import logging
import uuid

import pytest
import structlog
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django_tenants.utils import schema_context
from structlog.contextvars import bound_contextvars, get_contextvars

from tenants.concurrency import map_in_tenant
from tenants.dramatiq import Job
from tenants.log_context import LoggedCommand
from tenants.scheduling import PeriodicJob, run_for_each_tenant
from tenants.tests.probe.actors import log_line
from tenants.websocket import TenantWebsocketMiddleware
from testing.accounts import login_cookie
from testing.broker import flush_test_broker
from testing.logs import parse_json_lines, production_json_logs
from testing.waiting import wait_until

logger = structlog.get_logger("tests.log_context")


# -- HTTP ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_requests_lines_carry_its_request_id_and_tenant_and_the_next_request_starts_clean(tenant_a, tenant_b):
    with production_json_logs() as logs:
        alpha = Client().get("/t/alpha/wecom/callback/nosuchapp/", HTTP_X_REQUEST_ID="edge-7f3a.42")
        assert get_contextvars() == {}
        # No CSRF token: CsrfViewMiddleware logs its refusal (a standard-library line) inside the chain.
        beta = Client(enforce_csrf_checks=True).post("/t/beta/admin/login/", {"username": "x"},
                                                     HTTP_X_REQUEST_ID="not a sane id\n{}")
        assert get_contextvars() == {}

    assert alpha.status_code == 404 and alpha["X-Request-ID"] == "edge-7f3a.42"
    assert beta.status_code == 403
    beta_id = beta["X-Request-ID"]
    assert len(beta_id) == 32 and beta_id != "edge-7f3a.42"  # the caller's id was not sane: a new one

    [rejected] = logs.events("trace.rejected")  # logged by the view
    assert rejected["request_id"] == "edge-7f3a.42"
    assert (rejected["tenant"], rejected["method"], rejected["path"]) == (
        "alpha", "GET", "/t/alpha/wecom/callback/nosuchapp/")
    [csrf] = [line for line in logs.lines() if line["logger"] == "django.security.csrf"]
    assert (csrf["request_id"], csrf["tenant"], csrf["method"]) == (beta_id, "beta", "POST")
    assert csrf["level"] == "warning" and csrf["event"].startswith("Forbidden (CSRF")
    # Django logs a 4xx after the middleware chain returned: the request's id still comes with it.
    not_found = [line for line in logs.lines() if line["logger"] == "django.request"]
    assert [(line["request_id"], line["tenant"], line["status_code"]) for line in not_found] == [
        ("edge-7f3a.42", "alpha", 404)]  # beta's 403 was logged once, by the CSRF check
    assert "edge-7f3a.42" not in str([line for line in logs.lines() if line.get("tenant") == "beta"])


# -- WebSocket ---------------------------------------------------------------------------------------------


@pytest.fixture
def alpha_session(committed_db, tenant_a):
    cookie = login_cookie("alpha", tenant_a.staff_email)
    yield cookie
    with schema_context("alpha"):
        Session.objects.filter(session_key=cookie).delete()


def test_a_websocket_connection_binds_tenant_user_and_connection_id_for_its_lifetime(alpha_session, tenant_a):
    seen = []

    async def consumer(scope, receive, send):
        await receive()  # websocket.connect
        seen.append(dict(get_contextvars()))
        logger.info("ws.connected")
        await send({"type": "websocket.close", "code": 4000})

    app = TenantWebsocketMiddleware(consumer)

    @async_to_sync
    async def connect(path: str, cookie: str | None = None):
        headers = [(b"host", b"localhost")] + ([(b"cookie", f"sessionid={cookie}".encode())] if cookie else [])
        communicator = WebsocketCommunicator(app, path, headers=headers)
        assert await communicator.connect(timeout=5) == (False, 4000)

    with production_json_logs() as logs:
        connect("/t/alpha/ws/agent/", alpha_session)
        connect("/t/beta/ws/agent/")

    with schema_context("alpha"):
        staff_id = Session.objects.get(session_key=alpha_session).get_decoded()["_auth_user_id"]
    signed_in, anonymous = seen
    assert (signed_in["tenant"], str(signed_in["user_id"]), signed_in["path"]) == ("alpha", staff_id,
                                                                                    "/t/alpha/ws/agent/")
    assert anonymous["tenant"] == "beta" and "user_id" not in anonymous
    assert signed_in["connection_id"] != anonymous["connection_id"]
    lines = logs.events("ws.connected")
    assert [(line["tenant"], line["connection_id"]) for line in lines] == [
        ("alpha", signed_in["connection_id"]), ("beta", anonymous["connection_id"])]


# -- Dramatiq -------------------------------------------------------------------------------------------------


@pytest.fixture
def probe_queue():
    flush_test_broker()
    yield
    flush_test_broker()


@pytest.mark.live
def test_a_jobs_lines_carry_its_job_id_tenant_and_the_enqueuers_trace_id(committed_db, probe_queue, start_worker):
    trace_id = str(uuid.uuid4())
    with schema_context("alpha"), bound_contextvars(trace_id=trace_id):
        traced = log_line.send("first")  # through broker.enqueue: the middleware's before_enqueue
    with schema_context("beta"):
        untraced = log_line.send("second")
    with schema_context("alpha"), transaction.atomic():
        with bound_contextvars(trace_id=trace_id):
            Job("probe.log_line", "probe").send_on_commit("third")
        # The trace id is captured when the job is asked for; the message leaves on commit, later.
    worker = start_worker("probe", threads=1, LOG_FORMAT="json")

    def probe_lines() -> list[dict]:
        lines = parse_json_lines("\n".join(line for line in worker.output().splitlines() if line.startswith("{")))
        return [line for line in lines if line["logger"] in ("probe", "probe.stdlib")]

    wait_until(lambda: len(probe_lines()) == 6, timeout=30, message=lambda: worker.output()[-3000:])
    by_text = {}
    for line in probe_lines():
        by_text.setdefault(line.get("text") or line["event"].rsplit(" ", 1)[-1], []).append(line)
    first, second, third = by_text["first"], by_text["second"], by_text["third"]
    for line in first:  # the structlog event and the standard-library line alike
        assert (line["job_id"], line["tenant"], line["trace_id"]) == (traced.message_id, "alpha", trace_id)
        assert (line["actor"], line["queue"], line["retries"]) == ("probe.log_line", "probe", 0)
    for line in second:  # the job after it: its own id and tenant, no trace id left over
        assert (line["job_id"], line["tenant"]) == (untraced.message_id, "beta")
        assert "trace_id" not in line
    assert {(line["tenant"], line["trace_id"]) for line in third} == {("alpha", trace_id)}
    assert len({line["job_id"] for line in first + second + third}) == 3


# -- scheduler and commands -----------------------------------------------------------------------------


def test_each_scheduled_run_carries_its_job_and_tenant_and_a_failure_names_them(committed_db):
    def sweep():
        logger.info("probe.swept")
        logging.getLogger("probe.stdlib").info("swept in a tenant")
        if structlog.contextvars.get_contextvars()["tenant"] == "beta":
            raise RuntimeError("beta's sweep broke")

    with production_json_logs() as logs:
        ran = run_for_each_tenant(PeriodicJob("probe.sweep", 0, sweep))
    assert get_contextvars() == {}

    assert ran >= 1  # alpha ran; beta failed
    swept = [line for line in logs.lines() if line["event"] in ("probe.swept", "swept in a tenant")]
    tenants = {line["tenant"] for line in swept}
    assert {"alpha", "beta"} <= tenants
    assert all(line["periodic_job"] == "probe.sweep" for line in swept)
    runs = {(line["tenant"], line["job_id"]) for line in swept}
    assert len(runs) == len(tenants)  # one run id per tenant, shared by that run's lines
    [failed] = logs.events("scheduler.job_failed")
    assert (failed["tenant"], failed["periodic_job"]) == ("beta", "probe.sweep")
    assert "beta's sweep broke" in failed["exception"]
    assert failed["job_id"] == dict(runs)["beta"]


class _ProbeCommand(LoggedCommand):
    def add_arguments(self, parser):
        parser.add_argument("tenant")

    def handle(self, *args, tenant, **options):
        logger.info("probe.command_ran")


def test_a_command_binds_its_name_and_tenant_while_it_runs():
    with production_json_logs() as logs:
        call_command(_ProbeCommand(), "alpha")
    assert get_contextvars() == {}
    [line] = logs.events("probe.command_ran")
    assert (line["command"], line["tenant"]) == ("test_log_context", "alpha")


# -- the I/O pool ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_calls_on_the_io_pool_see_the_callers_context_and_keep_their_own_to_themselves(tenant_a):
    def call(number: int) -> dict:
        with bound_contextvars(trace_id=f"t{number}"):
            return dict(get_contextvars())

    with schema_context("alpha"), bound_contextvars(job_id="job-1", tenant="alpha"):
        seen = map_in_tenant(call, [1, 2, 3, 4])
        assert get_contextvars() == {"job_id": "job-1", "tenant": "alpha"}
    assert seen == [{"job_id": "job-1", "tenant": "alpha", "trace_id": f"t{n}"} for n in (1, 2, 3, 4)]
