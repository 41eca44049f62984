"""Project-wide fixtures: two committed tenants, live processes against the test database.

Tenants (schemas) are created once per session and committed, because the
processes that tests start (web server, Dramatiq worker) must see them. Tests
that only use the ORM run inside pytest-django's rolled-back transaction as usual.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

# Browser fixtures (`browser`, `page`): Debian Chromium driven by Playwright.
pytest_plugins = ["browser_testing"]

ROOT = Path(__file__).resolve().parent
STAFF_PASSWORD = "Staff-password-123"


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
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=request.config.option.verbose, interactive=False,
                                 keepdb=django_db_keepdb, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=request.config.option.verbose, keepdb=django_db_keepdb)


@pytest.fixture(scope="session")
def tenants_world(django_db_setup, django_db_blocker) -> dict[str, TenantWorld]:
    """Tenants `alpha` and `beta`, each with a domain and a staff user (committed)."""
    from tenants.models import Tenant
    from tenants.services import create_staff_user, create_tenant

    assert connection.settings_dict["NAME"].startswith("test_"), "refusing to write outside the test database"
    world = {}
    with django_db_blocker.unblock():
        for slug in ("alpha", "beta"):
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


@pytest.fixture(autouse=True)
def _back_to_public_schema():
    """No test leaks its schema into the next one."""
    yield
    connection.set_schema_to_public()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_children() -> str:
    db = connection.settings_dict
    host = db["HOST"] or "localhost"
    if host.startswith("/"):
        return f"postgresql://{db['USER']}:{db['PASSWORD']}@/{db['NAME']}?host={host}"
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def live_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must use the test database and Redis."""
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="config.settings.test", DATABASE_URL=database_url_for_children(),
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class LiveProcess:
    """A child process whose output goes to a log file shown when a test fails."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str]):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a shutdown)."""
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout}s waiting for {detail}")


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

    def start(name: str, *manage_args: str, **env: str) -> LiveProcess:
        process = LiveProcess(f"{name}{len(processes)}", [sys.executable, "manage.py", *manage_args], tmp_path,
                              live_env(**env))
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()
    if processes:
        # What a test's workers left queued (delayed retries, suggestions) must not become the
        # backlog of the next test's worker.
        import dramatiq

        dramatiq.get_broker().flush_all()


@pytest.fixture
def start_worker(start_process):
    """Start a real Dramatiq worker (`manage.py rundramatiq`) on the given queues."""

    def start(*queues: str, threads: int = 2, **env: str) -> LiveProcess:
        env.setdefault("dramatiq_worker_timeout", "100")  # as platform/Procfile: pick up work within 0.1 s
        args = ["rundramatiq", "--processes", "1", "--threads", str(threads)]
        if queues:
            args += ["--queues", *queues]
        return start_process("worker", *args, **env)

    return start


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def committed_db(tenants_world, django_db_blocker):
    """Database access outside a test transaction, for tests whose other threads or
    processes must see the rows; such tests clean up what they create."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def login_cookie(schema: str, email: str) -> str:
    """A session cookie value for `email`, created in `schema`'s own session table."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    with schema_context(schema):
        client = Client()
        client.force_login(get_user_model().objects.get(username=email))
        return client.cookies[settings.SESSION_COOKIE_NAME].value
