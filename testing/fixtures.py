"""The fixtures every test can use, as a pytest plugin (registered in the root conftest.py).

Tenants (schemas) are created once per session and committed, because the processes that tests
start (web server, Dramatiq worker) must see them. Tests that only use the ORM run inside
pytest-django's rolled-back transaction as usual; tests whose other threads or processes must
see their rows use `committed_db` and clean up what they create.

    tenants_world, tenant_a, tenant_b   the committed tenants alpha and beta (schema, domain, staff user)
    committed_db                        database access outside a test transaction
    redis_client                        the test Redis database
    live_server_url, start_process,     real processes against the test database: uvicorn, any
    start_worker                        `manage.py` command, a Dramatiq worker (tests marked `live`)
    sandbox_server, sandbox, fake_model the in-process WeCom sandbox (reset per test) and its fake model
    clean_breakers                      no AI circuit-breaker state before or after the test
    committed_app                       make committed WeCom apps, purged with their rows afterwards

A test that uses a fixture starting a process (PROCESS_FIXTURES) must be marked `live`, so that
`make test-fast` (-m "not live") leaves it out; collection stops with a message when one is not.
"""

from __future__ import annotations

import functools
import io
import itertools
import sys
from dataclasses import dataclass

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases, teardown_databases
from django_dramatiq.management.commands.rundramatiq import Command as RunDramatiq
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from conversations.services import sensitive_words
from conversations.services.api_keys import create_api_key
from conversations.webhooks.models import SUBSCRIPTIONS_CACHE_PARTS
from conversations.wecom.client import forget_held_tokens
from kb import homophones
from tenants.keys import redis_key
from tenants.models import Tenant
from tenants.outbound_urls import clear_dns_cache
from tenants.redis import redis_client as shared_redis
from tenants.services import create_staff_user, create_tenant
from testing.accounts import STAFF_PASSWORD, staff_client
from testing.broker import ensure_vhost, flush_test_broker, forget_job_marks
from testing.factories import APP_SECRET, KF_SECRET, WeComAppFactory
from testing.processes import LiveProcess, free_port, live_env, worker_metrics_env
from testing.vectors import AGENT_ID, CORP_ID, OPEN_KFID
from testing.waiting import wait_until
from testing.wecom import purge_app
from wecom_sandbox.client import SandboxClient, start_sandbox

TEST_TENANTS = ("alpha", "beta")
# What a Dramatiq worker process logs once SIGTERM has let its jobs finish (or go back to the broker).
WORKER_SHUT_DOWN = "Worker has been shut down."
# Fixtures that start a process (or a browser): a test using one, directly or through another fixture, is `live`.
PROCESS_FIXTURES = frozenset({"live_server_url", "start_process", "start_worker", "browser", "page"})


def _process_fixtures_of(item) -> set[str]:
    # fixturenames holds the whole closure, and the names of direct parametrization too (a `page` argument
    # of @pytest.mark.parametrize is not the browser page).
    parametrized = set(item.callspec.params) if hasattr(item, "callspec") else set()
    return (PROCESS_FIXTURES & set(getattr(item, "fixturenames", ()))) - parametrized


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    unmarked = [f"{item.nodeid} (uses {', '.join(sorted(_process_fixtures_of(item)))})"
                for item in items if _process_fixtures_of(item) and not item.get_closest_marker("live")]
    if unmarked:
        raise pytest.UsageError("tests that start processes must be marked live "
                                "(pytestmark = pytest.mark.live or @pytest.mark.live):\n  " + "\n  ".join(unmarked))


# -- the database and the tenants ---------------------------------------------------------------------


@dataclass(frozen=True)
class TenantWorld:
    slug: str
    domain: str
    staff_email: str


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_keepdb):
    """Always create the test database, even when no collected test carries the django_db mark.

    pytest-django sets up only the databases that marked tests ask for; our
    fixtures that commit (tenants_world, committed_db) would otherwise write
    into the developer's own database.
    """
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=request.config.option.verbose, interactive=False,
                                 keepdb=django_db_keepdb, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=request.config.option.verbose, keepdb=django_db_keepdb)


@pytest.fixture(scope="session")
def tenants_world(django_db_setup, django_db_blocker) -> dict[str, TenantWorld]:
    """Tenants `alpha` and `beta`, each with a domain and a staff user (committed)."""
    assert connection.settings_dict["NAME"].startswith("test_"), "refusing to write outside the test database"
    world = {}
    with django_db_blocker.unblock():
        for slug in TEST_TENANTS:
            domain = f"{slug}.test"
            if not Tenant.objects.filter(schema_name=slug).exists():
                create_tenant(slug=slug, name=f"{slug.title()} Ltd", domain=domain)
                with schema_context(slug):
                    create_staff_user(email=f"staff@{slug}.test", password=STAFF_PASSWORD)
            world[slug] = TenantWorld(slug=slug, domain=domain, staff_email=f"staff@{slug}.test")
        connection.set_schema_to_public()
    return world


@pytest.fixture
def tenant_a(tenants_world) -> TenantWorld:
    return tenants_world["alpha"]


@pytest.fixture
def tenant_b(tenants_world) -> TenantWorld:
    return tenants_world["beta"]


@pytest.fixture(scope="session", autouse=True)
def _test_broker_vhost():
    """With an amqp:// BROKER_URL the test settings use a RabbitMQ vhost of the run's own: it must exist."""
    if settings.BROKER_URL.startswith("amqp"):
        ensure_vhost(settings.BROKER_URL)


@pytest.fixture(autouse=True)
def _no_job_marks_from_earlier_tests():
    """A coalesced job's mark says its job is queued (tenants/coalescing.py); an earlier test's job is not."""
    forget_job_marks()


@pytest.fixture(autouse=True)
def _back_to_public_schema():
    """No test leaks its schema into the next one."""
    yield
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _no_derived_caches_from_earlier_tests():
    """Per-process caches built from a tenant's rows (its words by sound, its sensitive-word matcher) are keyed
    by a version in Redis that moves on commit; a test's rows are rolled back without a commit, so a cache an
    earlier test built from them would still look current. Each test starts without them."""
    homophones._vocabularies.clear()
    sensitive_words._matchers.clear()
    forget_held_tokens()  # a token key another test deleted from Redis is gone for this one too
    # Webhook subscriptions cached from endpoints another test rolled back.
    shared_redis().delete(*(redis_key(*SUBSCRIPTIONS_CACHE_PARTS, schema=schema) for schema in TEST_TENANTS))


@pytest.fixture
def committed_db(tenants_world, django_db_blocker):
    """Database access outside a test transaction, for tests whose other threads or
    processes must see the rows; such tests clean up what they create."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


# -- live processes -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_server_url(tenants_world, tmp_path_factory):
    """A real uvicorn web process serving the ASGI app against the test database."""
    port = free_port()
    proc = LiveProcess(
        "web",
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        tmp_path_factory.mktemp("web"),
        live_env(),
    )
    url = f"http://127.0.0.1:{port}"

    def ready():
        if proc.proc.poll() is not None:
            raise AssertionError(f"web server exited:\n{proc.output()}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30, message="the web server")
    yield url
    proc.stop()


@pytest.fixture
def start_process(tmp_path):
    """Start project processes (`manage.py ...`) against the test database; stopped after the test."""
    processes: list[LiveProcess] = []

    def start(name: str, *manage_args: str, command: list[str] | None = None, stopped_when: str | None = None,
              **env: str) -> LiveProcess:
        """`command`: run that instead of `manage.py <manage_args>`."""
        args = command or [sys.executable, "manage.py", *manage_args]
        process = LiveProcess(f"{name}{len(processes)}", args, tmp_path, live_env(**env), stopped_when=stopped_when)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()  # all at once: each takes a few seconds to finish its jobs and exit
    for process in processes:
        process.stop()
    if processes:
        # What a test's workers left queued (delayed retries, suggestions) must not become the
        # backlog of the next test's worker.
        flush_test_broker()


@functools.cache
def dramatiq_command(*, threads: int) -> tuple[str, ...]:
    """The command `manage.py rundramatiq --processes 1 --threads <threads>` runs (it discovers the actor modules,
    then execs dramatiq), found once in this process: each worker a test starts then boots Django once instead of
    twice, about a second and a half of CPU less (the Procfile's own command has tests of its own:
    config/tests/test_deployment_files.py, test_logging.py)."""
    modules = RunDramatiq(stdout=io.StringIO()).discover_tasks_modules()
    return (sys.executable, "-m", "dramatiq", "--path", ".", "--processes", "1", "--threads", str(threads),
            "--worker-shutdown-timeout", "600000", *modules)


@pytest.fixture
def start_worker(start_process, tmp_path):
    """Start a real Dramatiq worker (what `manage.py rundramatiq` runs) on the given queues, its metrics in a
    directory of the test's own and served on a free port (`env` may name both)."""
    workers = itertools.count()

    def start(*queues: str, threads: int = 2, **env: str) -> LiveProcess:
        env.setdefault("dramatiq_worker_timeout", "100")  # as platform/Procfile: pick up work within 0.1 s
        env = {**worker_metrics_env(tmp_path / f"prometheus-worker-{next(workers)}"), **env}
        command = [*dramatiq_command(threads=threads)]
        if queues:
            command += ["--queues", *queues]
        return start_process("worker", command=command, stopped_when=WORKER_SHUT_DOWN, **env)

    return start


# -- the WeCom sandbox --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_server():
    """The WeCom sandbox, served from a thread of the test process for the whole session; its base URL."""
    server, base_url = start_sandbox()
    yield base_url
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The WeCom sandbox, reset, with the official corp registered (the app's and the 微信客服 secret);
    WECOM_API_BASE points at it."""
    client = SandboxClient(sandbox_server)
    client.reset()
    client.create_corp(CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": APP_SECRET}],
                       kf_accounts=[{"open_kfid": OPEN_KFID, "secret": KF_SECRET}])
    settings.WECOM_API_BASE = sandbox_server
    yield client
    client.close()
    connection.set_schema_to_public()


@pytest.fixture
def fake_model(sandbox_server):
    """The sandbox's OpenAI-compatible fake model, reset (no faults, no latency, no recorded calls)."""
    with SandboxClient(sandbox_server) as client:
        client.model_reset()
        yield client


@pytest.fixture
def clean_breakers(redis_client):
    """No AI circuit-breaker state left in Redis before or after the test, for either tenant."""
    def clean():
        for schema in TEST_TENANTS:
            keys = list(redis_client.scan_iter(f"{schema}:ai:breaker:*"))
            if keys:
                redis_client.delete(*keys)

    clean()
    yield
    clean()


# -- WeCom apps -----------------------------------------------------------------------------------------


@pytest.fixture
def committed_app(committed_db):
    """Make committed WeCom apps (`committed_app("alpha", agent_id=4242)`, WeComAppFactory's fields);
    each is deleted after the test with every row that hangs off it."""
    made: list[tuple[str, WeComApp]] = []

    def make(schema: str, **fields) -> WeComApp:
        with schema_context(schema):
            app = WeComAppFactory(**fields)
        made.append((schema, app))
        return app

    yield make
    for schema, app in reversed(made):
        purge_app(schema, app)


@pytest.fixture
def private_urls_refused(settings):
    """The production policy for outbound URLs (tenants.outbound_urls): the test settings allow private
    addresses, because the sandbox listens on 127.0.0.1; a DNS answer cached by another test does not count."""
    settings.ALLOW_PRIVATE_OUTBOUND_URLS = False
    clear_dns_cache()
    yield
    clear_dns_cache()


@pytest.fixture
def api_keys(tenant_a, tenant_b) -> dict[str, str]:
    """A fresh REST API key of each test tenant: {"alpha": ..., "beta": ...} (send with testing.accounts.api_client)."""
    keys = {}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            _, keys[schema] = create_api_key(name="integration")
    return keys


@pytest.fixture
def admin_client(tenant_a):
    """A client signed in to alpha's admin as a superuser (pytest-django's own knows no tenants)."""
    return staff_client("alpha")
