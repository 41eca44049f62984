"""What the benchmarks share: process groups, /proc CPU reading, the bench database and loopback checks.

Imported by bench/ingress.py, bench/pipeline.py and bench/realtime.py (run from the repo root as
`.venv/bin/python bench/<name>.py`, which puts this folder on sys.path).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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
