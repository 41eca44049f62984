"""What the three benchmarks share, once: the bench tenant and its servers, signed callbacks, the CPU meter,
statistics, the entries `--record` writes into docs/BENCHMARKS.md, and the run's process groups and exit codes.

Imported by bench/ingress.py, bench/pipeline.py and bench/realtime.py (run from the repo root as
`.venv/bin/python bench/<name>.py`, which puts this folder on sys.path). Each script keeps what only it measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import http.client
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the scripts import the simulator's callback client from the repository

from wecom_sandbox.callbacks import CallbackResult, CallbackSender, text_message  # noqa: E402

TENANT = "bench"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Tencent's sample credentials (docs/WECOM_PROTOCOL.md, vector set A): the bench tenant's self-built app.
CORP_ID = "ww1436e0e65a779aee"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
AGENT_ID = 1000002
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"
# The bench tenant's tables the scripts read their results from.
INBOUND = f'"{TENANT}".conversations_inboundmessage'
OUTBOUND = f'"{TENANT}".conversations_outboundmessage'
TRACE = f'"{TENANT}".conversations_traceevent'
REDIS_MARKER = "wecomdesk-bench:owner"  # a Redis database holding this key with a script's name is that script's


class BenchError(RuntimeError):
    """The benchmark cannot run or its results are wrong; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_stats():
    """(pid, comm, pgid, utime+stime in ticks) of every readable process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2:].split()
        yield int(entry), comm, int(rest[2]), int(rest[11]) + int(rest[12])


def group_pids(pgid: int) -> list[int]:
    return [pid for pid, _, group, _ in _proc_stats() if group == pgid]


def machine_busy_ticks() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def check_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise BenchError(f"{what} must be on loopback, got {host!r}")


def ensure_database(database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    if "bench" not in name:
        raise BenchError(f"refusing to use database {name!r}: its name must contain 'bench' (it is reset)")
    maintenance = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def drop_tenant(database_url: str) -> None:
    """Remove the bench tenant (schema, domains, row) so the run starts from an empty tenant."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{TENANT}" CASCADE')
        if conn.execute("SELECT to_regclass('public.tenants_tenant')").fetchone()[0]:
            conn.execute("DELETE FROM tenants_domain WHERE tenant_id IN "
                         "(SELECT id FROM tenants_tenant WHERE schema_name = %s)", [TENANT])
            conn.execute("DELETE FROM tenants_tenant WHERE schema_name = %s", [TENANT])


def wait_until(predicate, *, timeout: float, what: str, children: list) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive():
                raise BenchError(f"{child.name} exited:\n{child.tail()}")
        if predicate():
            return
        time.sleep(0.1)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def sandbox_post(port: int, path: str, body: dict) -> None:
    """POST to the WeCom sandbox's control API (/sandbox/<path>): faults, the fake model's latency."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", f"/sandbox/{path}", body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status >= 300:
            raise BenchError(f"sandbox {path}: HTTP {response.status}")
    finally:
        conn.close()


# -- child processes ------------------------------------------------------------------------------


class Child:
    """A process started by a benchmark, in its own process group, output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM this child's own process group, SIGKILL it after `timeout`."""
        if self.proc.poll() is None:
            self.resume()  # in case it was paused
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(5)
        for _ in range(50):  # nothing it forked (uvicorn, dramatiq workers) may outlive it
            if not group_pids(self.proc.pid):
                break
            self._signal_group(signal.SIGKILL)
            time.sleep(0.1)
        if not self._log.closed:
            self._log.close()

    def pause(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group this Popen created (start_new_session)
        except ProcessLookupError:
            pass


def run_manage(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args[:2])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


# -- the bench tenant and its servers -------------------------------------------------------------


def reset_redis(redis_url: str, owner: str) -> None:
    """Empty the benchmark's Redis database: only when it is empty or marked as `owner`'s (a script's path)."""
    client = redis.Redis.from_url(redis_url)
    try:
        if client.dbsize() and client.get(REDIS_MARKER) != owner.encode():
            sample = next(iter(client.scan_iter(count=100)), b"")
            raise BenchError(f"Redis {redis_url} is in use by something else (e.g. key {sample!r}) and not marked "
                             f"as {owner}'s ({REDIS_MARKER}); choose another database with --redis-url")
        client.flushdb()
        client.set(REDIS_MARKER, owner)
    finally:
        client.close()


def worker_ready(redis_url: str, namespace: str) -> bool:
    """A Dramatiq worker of this namespace has registered its heartbeat with the Redis broker."""
    client = redis.Redis.from_url(redis_url)
    try:
        return client.zcard(f"{namespace}:__heartbeats__") > 0
    finally:
        client.close()


def child_env(*, settings: str, database_url: str, redis_url: str, namespace: str, key_prefix: str, port: int,
              sandbox_port: int, broker_url: str = "", log_level: str = "WARNING", debug: bool = False,
              worker_poll_ms: int = 100) -> dict[str, str]:
    """The environment of every child: the benchmark's own database, Redis, namespace and key prefixes, and its
    own WeCom sandbox as the WeCom API."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        LOG_LEVEL=log_level,
        DEBUG="true" if debug else "false",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        BROKER_URL=broker_url or redis_url,
        DRAMATIQ_NAMESPACE=namespace,
        CACHE_KEY_PREFIX=key_prefix,
        CHANNELS_PREFIX=f"{key_prefix}:asgi",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        WECOM_API_BASE=f"http://127.0.0.1:{sandbox_port}",
        PYTHONUNBUFFERED="1",
        dramatiq_worker_timeout=str(worker_poll_ms),  # the idle worker's longest poll sleep, as platform/Procfile
    )
    env.pop("TEST_WECOM_API_BASE", None)  # the tests' sandbox, not ours
    return env


def set_up_tenant(env: dict[str, str], *, database_url: str, redis_url: str, owner: str, name: str,
                  secret: str) -> str:
    """A fresh bench tenant with the sample app, on an emptied Redis database; returns the app's callback URL."""
    ensure_database(database_url)
    reset_redis(redis_url, owner)
    drop_tenant(database_url)
    run_manage(["migrate_schemas", "--shared", "--noinput"], env)
    run_manage(["tenants", "create", TENANT, "--name", name], env)
    out = run_manage(["wecom", "add-app", TENANT, "--kind", "app", "--name", "Bench app", "--corp-id", CORP_ID,
                      "--agent-id", str(AGENT_ID), "--secret", secret, "--token", TOKEN, "--aes-key", AES_KEY], env)
    found = re.search(r"Callback URL[^:]*:\s*(\S+)", out)
    if not found:
        raise BenchError(f"no callback URL in the output of wecom add-app:\n{out}")
    return found.group(1)


def sandbox_child(env: dict[str, str], log_dir: Path, *, port: int, callback_url: str, secret: str) -> Child:
    """The benchmark's own WeCom sandbox, seeded with the bench app (the worker answers through it)."""
    seed = log_dir / "sandbox-seed.json"
    seed.write_text(json.dumps([{"corp_id": CORP_ID, "members": [], "kf_accounts": [], "apps": [
        {"agent_id": AGENT_ID, "secret": secret,
         "callback": {"url": callback_url, "token": TOKEN, "encoding_aes_key": AES_KEY}}]}]))
    return Child("sandbox", [sys.executable, "-m", "wecom_sandbox", "--port", str(port), "--seed", str(seed)],
                 env, log_dir)


WEB_SERVERS = ("gunicorn", "uvicorn")


def web_child(env: dict[str, str], log_dir: Path, *, port: int, workers: int, server: str = "uvicorn",
              threads: int = 8, app: tuple[str, ...] | None = None) -> Child:
    """The web server: gunicorn as deployed for plain HTTP (config.wsgi with config/gunicorn.py: gthread, `threads`
    per worker process; platform/entrypoint.sh's `web`), or uvicorn (config.asgi by default, as the `websocket`
    role; `app` may name another application and its options, e.g. ("config.wsgi:application", "--interface",
    "wsgi")). `workers` processes either way; no access log."""
    if server == "gunicorn":
        env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": str(workers), "WEB_THREADS": str(threads)}
        return Child("web", [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn",
                             *(app or ("config.wsgi",))], env, log_dir)
    if server != "uvicorn":
        raise ValueError(f"unknown web server {server!r}: one of {', '.join(WEB_SERVERS)}")
    return Child("web", [sys.executable, "-m", "uvicorn", *(app or ("config.asgi:application",)), "--host",
                         "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
                         "--log-level", "warning"], env, log_dir)


def web_processes(master: int, server: str) -> list[int]:
    """The worker processes of a web server started by `web_child` (pid `master`): gunicorn's forked workers, or
    those uvicorn --workers spawned (not its resource tracker)."""
    children = [pid for pid in group_pids(master) if _parent(pid) == master]
    if server == "uvicorn":
        children = [pid for pid in children if "spawn_main" in _cmdline(pid)]
    return children


def _parent(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def add_web_server_options(parser: argparse.ArgumentParser, *, workers: int, server: str = "gunicorn") -> None:
    """--web-server, --web-workers, --web-threads: the web as deployed (gunicorn) or through ASGI (uvicorn)."""
    parser.add_argument("--web-server", choices=WEB_SERVERS, default=server,
                        help="gunicorn: config.wsgi in gthread workers, as deployed for plain HTTP; uvicorn: "
                             "config.asgi (the websocket role's server, which can serve everything)")
    parser.add_argument("--web-workers", type=int, default=workers, help="the web server's worker processes")
    parser.add_argument("--web-threads", type=int, default=8, help="gunicorn: threads per worker (WEB_THREADS)")


def web_server_line(*, server: str, workers: int, threads: int) -> str:
    """How the web ran, for a report."""
    if server == "gunicorn":
        return f"gunicorn `WEB_WORKERS={workers} WEB_THREADS={threads}` (config.wsgi, gthread)"
    return f"uvicorn `--workers {workers}` (config.asgi)"


def worker_child(env: dict[str, str], log_dir: Path, *, processes: int, threads: int) -> Child:
    return Child("worker", [sys.executable, "manage.py", "rundramatiq", "--processes", str(processes),
                            "--threads", str(threads)], env, log_dir)


def wait_for_servers(children: dict[str, Child], *, sandbox_port: int, web_port: int, redis_url: str | None,
                     namespace: str) -> None:
    """Until the sandbox and the web answer their health checks and (Redis broker) the worker has a heartbeat;
    fails as soon as one of the children exits."""
    everyone = list(children.values())
    wait_until(lambda: http_ok(sandbox_port, "/sandbox/health"), timeout=60, what="the WeCom sandbox",
               children=everyone)
    wait_until(lambda: http_ok(web_port, "/healthz"), timeout=60, what="the web server", children=everyone)
    if redis_url:  # RabbitMQ has no heartbeat to look at; the caller waits for answers instead
        wait_until(lambda: worker_ready(redis_url, namespace), timeout=60, what="the Dramatiq worker",
                   children=everyone)


# -- sending callbacks ----------------------------------------------------------------------------


def open_loop(plan, send: Callable, *, threads: int, stop: threading.Event | None = None) -> float:
    """Call `send(item, due, due_wall)` for each `(offset, item)` of `plan` when its offset (seconds from now) is
    due, from a pool of `threads`: a fixed clock, so a stalled server shows up as latency measured from `due`
    (monotonic) instead of slowing the sender down (no coordinated omission). Stops dispatching once `stop` is
    set. Returns the dispatcher's own worst lateness; every dispatched send has finished when it returns."""
    worst = 0.0
    pool = ThreadPoolExecutor(threads, thread_name_prefix="open-loop")
    try:
        start, start_wall = time.monotonic() + 0.05, time.time() + 0.05
        for offset, item in plan:
            if stop is not None and stop.is_set():
                break
            due = start + offset
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            worst = max(worst, time.monotonic() - due)
            pool.submit(send, item, due, start_wall + offset)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: drop what is not sent yet
        raise
    pool.shutdown(wait=True)  # bounded: every request has a client timeout
    return worst


def app_callback_sender(url: str) -> CallbackSender:
    """Callbacks of the bench app as WeCom sends them to `url` (encrypted and signed with the sample credentials)."""
    return CallbackSender(url=url, token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID, agent_id=AGENT_ID)


class TextCallbacks:
    """Encrypted, signed text callbacks of the bench app with MsgIds unique to this run (thread-safe)."""

    def __init__(self, callback_url: str, seed: int):
        self.sender = app_callback_sender(callback_url)
        # Far from any real or earlier run's MsgId, so a re-run never collides with stored rows.
        self._msg_base = 2**62 + random.Random(seed).randrange(2**40) * 2**20  # noqa: S311 - not a secret
        self._lock = threading.Lock()
        self._next = 0

    def new(self, *, member: str, text: str) -> tuple[str, CallbackResult]:
        """(MsgId, the prepared request: url with the signed query string, and body) of a new message."""
        with self._lock:
            msg_id = str(self._msg_base + self._next)
            self._next += 1
        plaintext = text_message(corp_id=CORP_ID, agent_id=AGENT_ID, from_user=member, content=text, msg_id=msg_id)
        return msg_id, self.sender.prepare(plaintext)

    @property
    def created(self) -> int:
        return self._next


# -- CPU accounting from /proc --------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnapshot:
    at: float
    ticks: dict[int, tuple[str, int]]  # pid -> (role, utime + stime)
    busy: int
    total: int


def _postgres_role(pid: int, database: str) -> str:
    """`postgres` for the server's own processes and backends of the benchmark's database, else `foreign`."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return "foreign"
    # backends: "postgres: 15/main: <user> <database> <host>(<port>) <state>"
    if len(title) >= 5 and title[0] == "postgres:" and ("(" in title[4] or title[4] == "[local]"):
        return "postgres" if title[3] == database else "foreign"
    return "postgres"


class CpuMeter:
    """Average cores used per role: this process (ROLES[0]), each child's process group by its name,
    postgres (its own processes and the benchmark database's backends), the broker (Redis, and
    RabbitMQ when `count_rabbitmq`); `other` is the rest of the machine's busy time (kernel networking,
    other users' processes, a profiler), from /proc/stat. A benchmark subclasses it with its ROLES."""

    ROLES: tuple[str, ...] = ()  # this process first, "other" and "idle" last
    BROKER_ROLE = "redis"

    def __init__(self, children: dict, database: str, count_rabbitmq: bool = False):
        self.children = children
        self.database = database
        self.count_rabbitmq = count_rabbitmq
        self._roles: dict[int, str] = {}

    def snapshot(self) -> CpuSnapshot:
        pgids = {child.proc.pid: name for name, child in self.children.items()}
        ticks: dict[int, tuple[str, int]] = {}
        for pid, comm, pgid, used in _proc_stats():
            if pid == os.getpid():
                role = self.ROLES[0]
            elif pgid in pgids:
                role = pgids[pgid]
            elif comm == "postgres":
                if pid not in self._roles:
                    self._roles[pid] = _postgres_role(pid, self.database)
                role = self._roles[pid]
            elif comm.startswith("redis-server") or (comm.startswith("beam") and self.count_rabbitmq):
                role = self.BROKER_ROLE
            else:
                continue
            ticks[pid] = (role, used)
        busy, total = machine_busy_ticks()
        return CpuSnapshot(time.monotonic(), ticks, busy, total)

    @classmethod
    def usage(cls, before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
        """Average cores used during the interval by each role, plus `other` and `idle`."""
        wall = max(after.at - before.at, 1e-6)
        cores = dict.fromkeys(cls.ROLES[:-2], 0.0)
        for pid, (role, used) in after.ticks.items():
            if role in cores:
                cores[role] += (used - before.ticks.get(pid, (role, 0))[1]) / CLK_TCK / wall
        ncpu = os.cpu_count() or 1
        busy = (after.busy - before.busy) / max(1, after.total - before.total) * ncpu
        cores["other"] = max(0.0, busy - sum(cores.values()))
        cores["idle"] = max(0.0, ncpu - busy)
        return cores


    @classmethod
    def cells(cls, cpu: dict[str, float]) -> str:
        """Cores per role, in ROLES order, for a report's table."""
        return " / ".join(f"{cpu.get(role, 0):.2f}" for role in cls.ROLES)


def wait_quiet(meter: CpuMeter, seconds: float, children: dict[str, Child]) -> tuple[float, bool]:
    """Busy cores with the servers idle: 2-second windows until two in a row are quiet (< 0.25 cores), at most
    `seconds`. Returns the last window's busy cores and whether it was quiet."""
    deadline, quiet_windows = time.monotonic() + seconds, 0
    while True:
        before = meter.snapshot()
        time.sleep(2)
        usage = meter.usage(before, meter.snapshot())
        background = sum(v for k, v in usage.items() if k != "idle")
        quiet = background < 0.25
        quiet_windows = quiet_windows + 1 if quiet else 0
        if quiet_windows >= 2 or time.monotonic() >= deadline:
            return background, quiet
        if not quiet:
            print(f"waiting for a quiet machine: {background:.2f} cores busy", flush=True)
        for child in children.values():
            if not child.alive():
                raise BenchError(f"{child.name} exited:\n{child.tail()}")


# -- statistics -----------------------------------------------------------------------------------


def percentile(values, q: float) -> float:
    """Nearest-rank percentile of the values that are not None; nan when there are none."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return float("nan")
    index = math.ceil(q / 100 * len(ordered)) - 1
    return ordered[min(len(ordered) - 1, max(0, index))]


def ms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or nan
        return "-"
    return f"{seconds * 1000:,.0f} ms" if abs(seconds) >= 0.0995 else f"{seconds * 1000:.1f} ms"


def dist(values, qs=(50, 95, 99)) -> str:
    """p50 / p95 / p99 / max of the values that are not None."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return " / ".join([ms(percentile(values, q)) for q in qs] + [ms(max(values))])


# -- recording in docs/BENCHMARKS.md --------------------------------------------------------------


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"nproc {nproc}, {cpu}{mem}, Linux {platform.release()}, Python {platform.python_version()}"


def git_state() -> str:
    """The commit measured, and the tracked files outside bench/ and docs/ that differed from it (someone's work
    in progress: results and benchmarks are not the code measured)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit (git did not answer)"
    if head.returncode != 0:
        return "an unknown commit (not a git checkout)"
    dirty = [line[3:] for line in status.stdout.splitlines() if not line[3:].startswith(("bench/", "docs/"))]
    return f"commit `{head.stdout.strip()}`" + (
        f" with uncommitted changes to {len(dirty)} tracked files ({', '.join(dirty[:5])})" if dirty else "")


def command_line(argv: list[str], *, script: str, unkeyed: tuple[str, ...] = ("--wait-quiet",),
                 unkeyed_flags: tuple[str, ...] = ("--keep-logs",)) -> tuple[str, str]:
    """The command as typed (without --record) and the key of its entry: the options that change what is
    measured, i.e. all but `unkeyed` (options with a value) and `unkeyed_flags`."""
    shown = [a for a in argv if a != "--record"]
    key, skip = [], False
    for arg in shown:
        if skip:
            skip = False
        elif arg in unkeyed:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in unkeyed)) and arg not in unkeyed_flags:
            key.append(arg)
    command = " ".join([f".venv/bin/python bench/{script}", *map(shlex.quote, shown)])
    return command, " ".join(key) or "(defaults)"


def entry_title(command: str) -> str:
    return f"### {dt.date.today().isoformat()} · `{command}`"


def record(entry_key: str, text: str, *, script: str, title: str) -> None:
    """Insert or replace this command's entry between the script's markers in docs/BENCHMARKS.md (under `title`
    when the section is new); the rest of the file is left as it is. Locked, and read under the lock, so that
    benchmarks recording at the same time do not lose each other's entries."""
    begin = f"<!-- bench/{script} results: begin (generated by --record, one entry per command) -->"
    end = f"<!-- bench/{script} results: end -->"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    with BENCHMARKS_MD.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        doc = handle.read() or "# Benchmarks\n"
        if begin not in doc:
            doc = doc.rstrip("\n") + f"\n\n{title}\n\n{begin}\n{end}\n"
        before, rest = doc.split(begin, 1)
        section, after = rest.split(end, 1)
        marker = f"<!-- run: {entry_key} -->"
        entries = [e for e in re.split(r"(?=^<!-- run: )", section.strip("\n"), flags=re.M) if e.strip()]
        entry = f"{marker}\n{text.strip()}\n"
        for i, existing in enumerate(entries):
            if existing.startswith(marker + "\n"):
                entries[i] = entry
                break
        else:
            entries.append(entry)
        section = "\n" + "\n\n".join(e.strip("\n") for e in entries) + "\n\n"
        handle.seek(0)
        handle.truncate()
        handle.write(before + begin + section + end + after)
    print(f"recorded in {BENCHMARKS_MD}")


# -- the run --------------------------------------------------------------------------------------


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The script's parser: its docstring's first paragraph as the description, defaults shown in --help."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_common_options(parser: argparse.ArgumentParser, *, database: str, redis_db: int) -> None:
    """The options every benchmark takes; `database` and `redis_db` are the script's own, so that benchmarks
    never share data with each other, the developer or the tests."""
    parser.add_argument("--worker-processes", type=int, default=1, help="rundramatiq --processes")
    parser.add_argument("--worker-threads", type=int, default=8, help="rundramatiq --threads (Procfile default)")
    parser.add_argument("--settings", default="config.settings.local",
                        help="DJANGO_SETTINGS_MODULE of the children (e.g. a module on PYTHONPATH that imports "
                             "config.settings.local and changes one setting, for experiments)")
    parser.add_argument("--database-url", default=f"postgresql://postgres@127.0.0.1:5432/{database}")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{redis_db}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before measuring, wait up to this long for an idle machine (other users' tests, "
                             "builds)")
    parser.add_argument("--record", action="store_true", help="write the results into docs/BENCHMARKS.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the child processes' logs")


def run(body: Callable[[dict[str, Child], Path], bool], args: argparse.Namespace, *, name: str,
        loopback: dict[str, str] | None = None) -> int:
    """Run `body(children, log_dir)`, which starts its children into the dict and returns whether every check
    passed; stop every child (process groups) however it ends, Ctrl-C and SIGTERM included. The database, Redis
    and the `loopback` URLs (what: url) must point at this machine. Exit status: 0 all checks passed, 1 a check
    failed, 2 the benchmark could not run (BenchError), 130 interrupted. The children's logs are kept when
    something failed or with --keep-logs."""
    loopback = {"the database": args.database_url, "Redis": args.redis_url, **(loopback or {})}
    children: dict[str, Child] = {}
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    failed = True

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for what, url in loopback.items():
            check_loopback(url, what)
        ok = body(children, log_dir)
        failed = not ok
        if not ok:
            print("CORRECTNESS CHECK FAILED (see ✗ above)", file=sys.stderr)
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("interrupted; stopping the processes started by the benchmark", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for child in reversed(list(children.values())):
            child.stop()
        if (failed or args.keep_logs) and any(log_dir.iterdir()):
            print(f"logs of the child processes: {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
