"""Benchmark of the WeCom callback front door: verify + decrypt + store + 200, enqueue on commit.

    .venv/bin/python bench/ingress.py [--rate 100] [--duration 20] [--web-workers 2] [--redelivery 0.3]
                                      [--web-interface gunicorn|asgi|wsgi] [--web-threads 8]
                                      [--concurrency 16] [--peak-duration 10] [--record]

Everything runs on this machine, over loopback, against the benchmark's OWN database
(`wecomdesk_bench`, created if missing; its `bench` tenant is dropped and recreated every run), its
own Redis logical database (12) and Dramatiq namespace (`dramatiq-bench`): it never touches the
developer's or the tests' data. It starts the web (gunicorn with config.wsgi as deployed; `--web-interface asgi`
for uvicorn with config.asgi), a real `manage.py rundramatiq` worker (the answering
pipeline) and a WeCom sandbox for the worker's API calls, then:

1. fixed rate, open loop: callbacks are scheduled on a fixed clock (`--rate` per second for
   `--duration` seconds) and handed to a thread pool; latency is measured from the SCHEDULED time,
   so a stalled server shows up as latency instead of silently lowering the send rate (coordinated
   omission). A `--redelivery` share of the messages is re-sent identically (same query string and
   body) 0-3 s after the original, sometimes racing it, as WeCom does.
2. peak, closed loop: `--concurrency` senders post new callbacks back to back for `--peak-duration`.

`--pause-worker` stops the worker while callbacks are sent (the front door alone) and resumes it for the
drain (the worker alone). After each phase it waits (bounded) for the worker to process the backlog, and
at the end checks
in the database that every unique message is stored exactly once and every redelivery was
recognised as a duplicate. The sender shares the CPU with the server; the report says how much of
the machine each process used. `--record` writes the results into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import benchkit  # bench/ is on sys.path when run as a script
import psycopg
from benchkit import INBOUND, TRACE, BenchError, Child, TextCallbacks, entry_title, free_port, ms, percentile

NAMESPACE = "dramatiq-bench"
WECOM_DEADLINE = 5.0  # WeCom drops the connection and re-sends after 5 s without an answer
REDELIVERY_WINDOW = 3.0  # seconds after the original's scheduled time


class CpuMeter(benchkit.CpuMeter):
    """CPU used per role (bench/benchkit.py): sender (this process), web, worker, sandbox, postgres, redis."""

    ROLES = ("sender", "web", "worker", "sandbox", "postgres", "redis", "other", "idle")


# -- sending --------------------------------------------------------------------------------------


@dataclass
class Prepared:
    key: int
    path: str  # path and signed query string, identical for every delivery of this message
    body: bytes


@dataclass
class Outcome:
    kind: str  # "new" or "redelivery"
    scheduled: float  # monotonic; latency is measured from here
    started: float
    ended: float
    status: int | None
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.ended - self.scheduled


class Poster:
    """POSTs prepared callbacks over plain http.client (cheap for the CPU the sender shares with the server)."""

    def __init__(self, host: str, port: int, *, timeout: float, keep_alive: bool):
        self.host, self.port, self.timeout, self.keep_alive = host, port, timeout, keep_alive
        self._local = threading.local()

    def post(self, message: Prepared) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if not self.keep_alive:
            headers["Connection"] = "close"
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request("POST", message.path, body=message.body, headers=headers)
                response = conn.getresponse()
                response.read()
                if not self.keep_alive or response.will_close:
                    self._drop()
                return response.status, None
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
                self._drop()
                if attempt == 2 or not self.keep_alive:  # a stale keep-alive connection is retried once
                    return None, type(exc).__name__
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                return None, type(exc).__name__
        return None, "unreachable"

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None


class MessageFactory:
    """New text callbacks from `members` members in turn (thread-safe)."""

    def __init__(self, callback_path: str, seed: int, members: int):
        self.members = members
        self.callbacks = TextCallbacks(callback_path, seed)
        self._lock = threading.Lock()
        self._next = 0

    def new(self) -> Prepared:
        with self._lock:
            key = self._next
            self._next += 1
        _, result = self.callbacks.new(member=f"member{key % self.members}",
                                       text=f"基准测试消息 {key}：我的订单到哪了？")
        return Prepared(key, result.url, result.body)

    @property
    def created(self) -> int:
        return self.callbacks.created


def open_loop(poster: Poster, factory: MessageFactory, *, rate: float, duration: float, redelivery: float,
              threads: int, seed: int) -> tuple[list[Outcome], float]:
    """Fixed-rate phase. Returns the outcomes and the worst lateness of the dispatcher itself."""
    rng = random.Random(seed)  # noqa: S311
    total = int(round(rate * duration))
    interval = 1.0 / rate
    redelivery_prob = redelivery / (1 + redelivery)  # share of requests, so that redeliveries/unique = redelivery
    plan: list[tuple[float, tuple[str, Prepared]]] = []  # (offset, (kind, message))
    recent: list[tuple[float, Prepared]] = []  # originals not re-sent yet
    for i in range(total):
        at = i * interval
        recent = [(t, m) for t, m in recent if at - t <= REDELIVERY_WINDOW]
        if recent and rng.random() < redelivery_prob:
            _, original = recent.pop(rng.randrange(len(recent)))
            plan.append((at, ("redelivery", original)))
        else:
            message = factory.new()  # encrypted before the clock starts
            plan.append((at, ("new", message)))
            recent.append((at, message))

    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def send(item: tuple[str, Prepared], scheduled: float, _wall: float) -> None:
        kind, message = item
        started = time.monotonic()
        status, error = poster.post(message)
        outcome = Outcome(kind, scheduled, started, time.monotonic(), status, error)
        with lock:
            outcomes.append(outcome)

    worst_lag = benchkit.open_loop(plan, send, threads=threads)
    return outcomes, worst_lag


def closed_loop(poster: Poster, factory: MessageFactory, *, concurrency: int, duration: float) -> list[Outcome]:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def sender() -> None:
        mine = []
        while time.monotonic() < deadline:
            message = factory.new()
            started = time.monotonic()
            status, error = poster.post(message)
            mine.append(Outcome("new", started, started, time.monotonic(), status, error))
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=sender, name=f"peak-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + poster.timeout * 3)
    return outcomes


# -- results --------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    load: str
    outcomes: list[Outcome]
    wall: float  # first scheduled send to last response
    cpu: dict[str, float]
    dispatcher_lag: float | None = None
    drain: dict = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 200)

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            key = str(o.status) if o.status is not None else (o.error or "error")
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def latencies(self) -> list[float]:
        return sorted(o.latency for o in self.outcomes)

    def kinds(self) -> dict[str, int]:
        counts = {"new": 0, "redelivery": 0}
        for o in self.outcomes:
            counts[o.kind] += 1
        return counts


def markdown_table(phases: list[PhaseResult], checks: dict) -> str:
    head = "| | " + " | ".join(p.name for p in phases) + " |\n|---|" + "---|" * len(phases) + "\n"
    rows: list[tuple[str, list[str]]] = []

    def row(label, fn):
        rows.append((label, [fn(p) for p in phases]))

    row("load", lambda p: p.load)
    row("requests (new + redelivered)",
        lambda p: f"{p.requests:,} ({p.kinds()['new']:,} + {p.kinds()['redelivery']:,})")
    row("status counts", lambda p: ", ".join(f"{k}: {v:,}" for k, v in p.statuses().items()))
    row("achieved rate (acks/s)", lambda p: f"**{p.ok / p.wall:,.0f}**" if p.wall else "-")
    for q in (50, 95, 99):
        row(f"ack latency p{q}", lambda p, q=q: ms(percentile(p.latencies(), q)))
    row("ack latency max", lambda p: ms(max(p.latencies(), default=float("nan"))))
    row("acks > 1 s / > 5 s (WeCom deadline)", lambda p: (
        f"{sum(1 for x in p.latencies() if x > 1) / max(1, p.requests):.2%} / "
        f"{sum(1 for x in p.latencies() if x > WECOM_DEADLINE) / max(1, p.requests):.2%}"))
    row("sender lateness (max)",
        lambda p: ms(p.dispatcher_lag) if p.dispatcher_lag is not None else "n/a (closed loop)")
    row("backlog drained after last ack", lambda p: p.drain.get("drain", "-"))
    row("stored → processed p50 / p95 / max", lambda p: p.drain.get("processing", "-"))
    row("worker rate, first → last row processed", lambda p: p.drain.get("throughput", "-"))
    row("CPU ms per stored message, phase start → drained (worker / postgres incl. front door)",
        lambda p: p.drain.get("cpu_per_row", "-"))
    row("CPU, cores (" + " / ".join(CpuMeter.ROLES) + ")", lambda p: CpuMeter.cells(p.cpu))
    row("CPU ms per ack (web / worker / postgres / sender)", lambda p: " / ".join(
        f"{p.cpu.get(k, 0) * p.wall / max(1, p.ok) * 1000:.1f}" for k in ("web", "worker", "postgres", "sender")))
    body = "".join(f"| {label} | " + " | ".join(values) + " |\n" for label, values in rows)
    for p in phases:
        if p.cpu.get("other", 0) > 0.3:
            number, _, title = p.name.partition(": ")
            body += (f"\n⚠ Phase {number} ({title}): processes outside the benchmark used {p.cpu['other']:.2f} cores "
                     "meanwhile; its numbers are pessimistic.\n")
    lines = [head + body, "Correctness (database `wecomdesk_bench`, schema `bench`):", ""]
    for label, value in checks.items():
        lines.append(f"- {label}: {value}")
    return "\n".join(lines) + "\n"


# -- database checks ------------------------------------------------------------------------------

def pending_rows(conn) -> int:
    return conn.execute(f"SELECT count(*) FROM {INBOUND} WHERE status = 'pending'").fetchone()[0]  # noqa: S608


def wait_for_drain(conn, *, last_ack_wall: float, timeout: float, first_id: int) -> dict:
    """Poll until nothing is pending (bounded); report how long after the last ack processing finished."""
    deadline = time.monotonic() + timeout
    pending = pending_rows(conn)
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
        pending = pending_rows(conn)
    row = conn.execute(
        f"""SELECT count(*), min(processed_at), max(processed_at),
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY processed_at - received_at),
                   percentile_disc(0.95) WITHIN GROUP (ORDER BY processed_at - received_at),
                   max(processed_at - received_at)
            FROM {INBOUND} WHERE id > %s AND status <> 'pending'""",  # noqa: S608
        [first_id]).fetchone()
    count, first_processed, last_processed, p50, p95, worst = row
    if pending:
        drain = f"NOT drained: {pending:,} still pending after {timeout:.0f} s"
    elif last_processed is None:
        drain = "-"
    else:
        drain = ms(max(0.0, last_processed.timestamp() - last_ack_wall))
    processing = " / ".join(ms(v.total_seconds()) if v is not None else "-" for v in (p50, p95, worst))
    span = (last_processed - first_processed).total_seconds() if count > 1 else 0
    throughput = f"{(count - 1) / span:,.0f}/s ({count:,} rows)" if span > 0 else "-"
    return {"drain": drain, "processing": processing, "pending": pending, "throughput": throughput, "rows": count}


def add_cpu_per_row(phase: PhaseResult, meter: CpuMeter, started: benchkit.CpuSnapshot) -> None:
    """CPU the worker and PostgreSQL spent per message from the phase's start until its rows were processed
    (the previous phase's backlog was drained before, so this is the cost of this phase's messages)."""
    rows = phase.drain.get("rows") or 0
    if phase.drain.get("pending") or not rows:
        return
    end = meter.snapshot()
    cores = meter.usage(started, end)
    wall = end.at - started.at
    phase.drain["cpu_per_row"] = " / ".join(f"{cores[k] * wall / rows * 1000:.1f}" for k in ("worker", "postgres"))


def max_id(conn) -> int:
    return conn.execute(f"SELECT coalesce(max(id), 0) FROM {INBOUND}").fetchone()[0]  # noqa: S608


def correctness(conn, *, unique_sent: int, requests_ok: int, requests: int) -> tuple[dict, bool]:
    rows, distinct, pending = conn.execute(
        f"""SELECT count(*), count(DISTINCT natural_key), count(*) FILTER (WHERE status = 'pending')
            FROM {INBOUND}""").fetchone()  # noqa: S608
    by_status = conn.execute(f"SELECT status, count(*) FROM {INBOUND} GROUP BY 1 ORDER BY 2 DESC").fetchall()  # noqa: S608
    stages = dict(conn.execute(f"SELECT stage, count(*) FROM {TRACE} GROUP BY 1").fetchall())  # noqa: S608
    duplicates = stages.get("duplicate", 0)
    unenqueued = conn.execute(
        f"""SELECT count(*) FROM {INBOUND} m WHERE NOT EXISTS
            (SELECT 1 FROM {TRACE} t WHERE t.inbound_id = m.id AND t.stage = 'enqueued')""").fetchone()[0]  # noqa: S608
    redundant = requests_ok - unique_sent
    ok = (rows == distinct == unique_sent and duplicates == redundant and unenqueued == 0 and pending == 0
          and requests_ok == requests)
    mark = {True: "✓", False: "✗"}
    checks = {
        "unique messages sent": f"{unique_sent:,}",
        "rows stored (distinct natural keys)": f"{rows:,} ({distinct:,}) {mark[rows == distinct == unique_sent]}",
        "acknowledged redundant deliveries / `duplicate` trace events":
            f"{redundant:,} / {duplicates:,} {mark[duplicates == redundant]}",
        "rows without an `enqueued` trace": f"{unenqueued:,} {mark[unenqueued == 0]}",
        "rows still pending at the end": f"{pending:,} {mark[pending == 0]}",
        "worker outcomes (row status)": ", ".join(f"{status}: {count:,}" for status, count in by_status),
        "all requests answered 200": f"{requests_ok:,} of {requests:,} {mark[requests_ok == requests]}",
    }
    if stages.get("deferred"):
        checks["worker deferrals (tenant/platform rate tier)"] = f"{stages['deferred']:,}"
    return checks, ok


# -- main -----------------------------------------------------------------------------------------


# --web-interface: the web server and the application it runs (benchkit.web_child's server and app).
WEB_INTERFACES = {
    "gunicorn": ("gunicorn", None),
    "asgi": ("uvicorn", None),
    "wsgi": ("uvicorn", ("config.wsgi:application", "--interface", "wsgi")),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = benchkit.argument_parser(__doc__)
    parser.add_argument("--rate", type=float, default=100, help="phase 1: requests per second (open loop)")
    parser.add_argument("--duration", type=float, default=20, help="phase 1: seconds")
    parser.add_argument("--redelivery", type=float, default=0.3,
                        help="phase 1: share of messages re-sent identically (redeliveries / unique messages)")
    parser.add_argument("--members", type=int, default=1000,
                        help="distinct senders the messages cycle over (the worker rate-limits each customer)")
    parser.add_argument("--concurrency", type=int, default=16, help="phase 2: concurrent closed-loop senders")
    parser.add_argument("--peak-duration", type=float, default=10, help="phase 2: seconds (0 skips phase 2)")
    parser.add_argument("--web-workers", type=int, default=2, help="the web server's worker processes")
    parser.add_argument("--web-threads", type=int, default=8, help="gunicorn: threads per worker (WEB_THREADS)")
    parser.add_argument("--web-interface", choices=list(WEB_INTERFACES), default="gunicorn",
                        help="gunicorn: config.wsgi in gthread workers, as deployed for plain HTTP; asgi: "
                             "config.asgi:application under uvicorn (the websocket role's server); wsgi: config.wsgi "
                             "through uvicorn's WSGI interface (experiment)")
    parser.add_argument("--pause-worker", action="store_true",
                        help="SIGSTOP the worker while callbacks are sent and resume it for the drain: the front door "
                             "alone (enqueue still real), then the worker alone on the backlog")
    parser.add_argument("--sender-threads", type=int, default=64, help="phase 1: thread pool of the open-loop sender")
    parser.add_argument("--keep-alive", action="store_true",
                        help="reuse connections (default: a new connection per callback, like WeCom)")
    parser.add_argument("--timeout", type=float, default=10, help="client timeout per request, seconds")
    parser.add_argument("--drain-timeout", type=float, default=60, help="longest wait for the worker's backlog")
    parser.add_argument("--django-debug", action="store_true", help="run the server with DEBUG=True (local default)")
    benchkit.add_common_options(parser, database="wecomdesk_bench", redis_db=12)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.concurrency < 1 or args.web_workers < 1:
        parser.error("rate, duration, concurrency and web-workers must be positive")
    if not 0 <= args.redelivery <= 1:
        parser.error("--redelivery is a share between 0 and 1")
    return args


def warm_up(port: int, callback_path: str, seconds: float = 2.0) -> None:
    """URL verifications (GET: tenant, app, signature, AES; no rows) from 8 connections, so that every
    web worker has imported the view and opened its pool before the clock starts."""
    sender = benchkit.app_callback_sender(f"http://127.0.0.1:{port}{callback_path}")
    deadline = time.monotonic() + seconds
    failures: list[str] = []

    def loop():
        while time.monotonic() < deadline:
            result = sender.verify_url()
            if not result.ok:
                failures.append(f"{result.status} {result.error} {result.body[:200]!r}")
                return

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    sender.close()
    if failures:
        raise BenchError(f"URL verification failed during warm-up: {failures[0]}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return benchkit.run(lambda children, log_dir: measure(args, argv, children, log_dir), args, name="ingress")


def measure(args, argv: list[str], children: dict[str, Child], log_dir: Path) -> bool:
    port, sandbox_port = free_port(), free_port()
    env = benchkit.child_env(settings=args.settings, database_url=args.database_url, redis_url=args.redis_url,
                             namespace=NAMESPACE, key_prefix="wecomdesk-bench", port=port, sandbox_port=sandbox_port,
                             debug=args.django_debug)
    t_setup = time.monotonic()
    callback_url = benchkit.set_up_tenant(env, database_url=args.database_url, redis_url=args.redis_url,
                                          owner="bench/ingress.py", name="Bench", secret="bench-secret")
    callback_path = urlsplit(callback_url).path
    print(f"set up in {time.monotonic() - t_setup:.1f} s; callback URL {callback_url}")

    # The worker answers through the WeCom API: the benchmark's own sandbox, seeded with the app.
    children["sandbox"] = benchkit.sandbox_child(env, log_dir, port=sandbox_port, callback_url=callback_url,
                                                 secret="bench-secret")
    server, app = WEB_INTERFACES[args.web_interface]
    children["web"] = benchkit.web_child(env, log_dir, port=port, workers=args.web_workers, server=server,
                                         threads=args.web_threads, app=app)
    children["worker"] = benchkit.worker_child(env, log_dir, processes=args.worker_processes,
                                               threads=args.worker_threads)
    benchkit.wait_for_servers(children, sandbox_port=sandbox_port, web_port=port, redis_url=args.redis_url,
                              namespace=NAMESPACE)
    warm_up(port, callback_path)
    time.sleep(1)  # let the warm-up's CPU settle before measuring
    meter = CpuMeter(children, urlsplit(args.database_url).path.lstrip("/"))
    background, quiet = benchkit.wait_quiet(meter, args.wait_quiet, children)
    print(f"machine load before phase 1 (servers idle): {background:.2f} cores"
          + ("" if quiet else " -- NOT QUIET, results are pessimistic"), flush=True)

    poster = Poster("127.0.0.1", port, timeout=args.timeout, keep_alive=args.keep_alive)
    factory = MessageFactory(callback_path, args.seed, args.members)
    phases: list[PhaseResult] = []
    conn = psycopg.connect(args.database_url, autocommit=True)
    try:
        # Phase 1: fixed rate.
        print(f"phase 1: {args.rate:g}/s for {args.duration:g} s, redelivery {args.redelivery:g} ...", flush=True)
        first_id = max_id(conn)
        if args.pause_worker:
            children["worker"].pause()
        before = meter.snapshot()
        outcomes, lag = open_loop(poster, factory, rate=args.rate, duration=args.duration,
                                  redelivery=args.redelivery, threads=args.sender_threads, seed=args.seed)
        after = meter.snapshot()
        last_ack_wall = time.time()
        wall = max(o.ended for o in outcomes) - min(o.scheduled for o in outcomes)
        phase = PhaseResult("1: fixed rate", f"{args.rate:g}/s open loop, {args.duration:g} s, "
                            f"redelivery {args.redelivery:g}", outcomes, wall,
                            meter.usage(before, after), dispatcher_lag=lag)
        children["worker"].resume()
        phase.drain = wait_for_drain(conn, last_ack_wall=last_ack_wall, timeout=args.drain_timeout,
                                     first_id=first_id)
        add_cpu_per_row(phase, meter, before)
        phases.append(phase)

        # Phase 2: peak.
        if args.peak_duration > 0:
            print(f"phase 2: {args.concurrency} closed-loop senders for {args.peak_duration:g} s ...", flush=True)
            first_id = max_id(conn)
            if args.pause_worker:
                children["worker"].pause()
            before = meter.snapshot()
            outcomes = closed_loop(poster, factory, concurrency=args.concurrency, duration=args.peak_duration)
            after = meter.snapshot()
            last_ack_wall = time.time()
            wall = max(o.ended for o in outcomes) - min(o.scheduled for o in outcomes)
            phase = PhaseResult("2: peak", f"{args.concurrency} senders closed loop, {args.peak_duration:g} s",
                                outcomes, wall, meter.usage(before, after))
            children["worker"].resume()
            phase.drain = wait_for_drain(conn, last_ack_wall=last_ack_wall, timeout=args.drain_timeout,
                                         first_id=first_id)
            add_cpu_per_row(phase, meter, before)
            phases.append(phase)

        requests = sum(p.requests for p in phases)
        requests_ok = sum(p.ok for p in phases)
        checks, ok = correctness(conn, unique_sent=factory.created, requests_ok=requests_ok, requests=requests)
    finally:
        conn.close()

    command, key = benchkit.command_line(argv, script="ingress.py", unkeyed=("--wait-quiet", "--drain-timeout"))
    table = markdown_table(phases, checks)
    server = benchkit.web_server_line(server=WEB_INTERFACES[args.web_interface][0], workers=args.web_workers,
                                      threads=args.web_threads)
    if args.web_interface == "wsgi":
        server = f"uvicorn `--workers {args.web_workers} --interface wsgi` (config.wsgi)"
    paused = " (**paused while callbacks were sent**, resumed for the drain)" if args.pause_worker else ""
    settings_line = (f"Code: {benchkit.git_state()}. {server} (access log "
                     f"off), rundramatiq `--processes {args.worker_processes} --threads {args.worker_threads}`"
                     f"{paused}, `{args.settings}` with DEBUG={'True' if args.django_debug else 'False'}, "
                     f"LOG_LEVEL=WARNING, {'keep-alive' if args.keep_alive else 'a new connection per callback'}; "
                     "the sender runs on the same cores. "
                     f"Busy cores before phase 1 with the servers idle: {background:.2f}"
                     + ("" if quiet else " (**the machine was not quiet: other processes competed**)"))
    entry = f"{entry_title(command)}\n\nMachine: {benchkit.machine_line()}. {settings_line}.\n\n{table}"
    print()
    print(entry)
    if args.record:
        benchkit.record(key, entry, script="ingress.py", title="## Ingress: the WeCom callback front door")
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
