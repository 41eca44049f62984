"""Chaos suite: a steady flow of encrypted WeCom callbacks while faults are injected one at a time; every message
must end answered once (or visibly refused), whatever broke.

    .venv/bin/python bench/chaos.py [--rate 10] [--contacts 60] [--redelivery 0.1] [--faults all] [--record]
    make chaos

Everything runs on this machine, over loopback, on servers the script starts and stops itself (bench/
chaos_servers.py): a Redis master, a replica and three Sentinels; a PostgreSQL primary and a synchronous
streaming standby; a RabbitMQ node (the Dramatiq broker, BROKER_URL=amqp://); the WeCom sandbox (the WeCom API and
the fake model); the web (uvicorn with config.asgi, or `--web-server gunicorn` with config.wsgi, as deployed), a
`manage.py rundramatiq` worker and `manage.py scheduler` with the production settings (config.settings.local,
DEBUG off), finding PostgreSQL by the two-host DATABASE_URL with
target_session_attrs=read-write and Redis through the Sentinels (REDIS_SENTINELS). The script is their
supervisor: a process that exits is started again after a second (RestartSec=1), and counted.

The flow: `--rate` callbacks a second from `--contacts` members, `echo:<tag> <question>` (the fake model answers
`<tag> <question>`), posted like WeCom does (a new connection each; a failed or refused request re-sent after
1, 2 and 4 s), a `--redelivery` share re-sent identically after its 200 (WeCom re-sends when it missed the
answer). The faults, in order, each after a few seconds of clean flow and followed by a wait until everything sent
so far has settled:

    worker-kill        SIGKILL of the worker's process group; restarted by the supervisor
    web-kill           SIGKILL of one of --web-workers web processes (one replica of several dying; gunicorn's or
                       uvicorn's master starts another); with --web-workers 1, of the whole web, restarted by the
                       supervisor
    redis-failover     SIGKILL of the Redis master; the Sentinels promote the replica (the old master rejoins
                       as a replica after the fault)
    postgres-failover  SIGKILL of the primary (postmaster and backends); `pg_ctl promote` of the standby
    rabbitmq-restart   a clean stop of the RabbitMQ node, then a start on the same data
    model-outage       the fake model down (503) for --hold seconds
    wecom-outage       WeCom's message/send answering errcode -1 (system busy) for --hold seconds
    model-delay        every model call answering after --model-delay seconds, for --hold seconds

Per fault: messages lost (a 200 and then neither an answer nor a visible refusal; must be 0), duplicate deliveries
(sends per message in the sandbox's record beyond the first, and deliveries the ledger cannot account for; must
be 0), acknowledgements over 5 s (from the scheduled send to the 200, retries included), and the time from the
injection until a message sent after it gets its model answer. Exit status 0 when every fault has 0 lost and 0
duplicates, 1 when one has not, 2 when the suite could not run. `--record` writes the table into docs/CHAOS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import benchkit  # bench/ is on sys.path when run as a script
import pipeline
import psycopg
from benchkit import CORP_ID, INBOUND, OUTBOUND, BenchError, Child, http_ok, ms
from chaos_accounting import Accounting, Row, Sent, Window, account, first_answer_after, summarise
from chaos_servers import PostgresPair, RabbitNode, RedisSentinels, kill_group, wait_for

FAULTS = ("worker-kill", "web-kill", "redis-failover", "postgres-failover", "rabbitmq-restart", "model-outage",
          "wecom-outage", "model-delay")
DATABASE = "wecomdesk_chaos_bench"  # benchkit resets only databases whose name contains "bench"
CHAOS_MD = benchkit.ROOT / "docs" / "CHAOS.md"
APP_ROLES = ("sandbox", "web", "worker", "scheduler")
RETRY_DELAYS = (1.0, 2.0, 4.0)  # a refused or failed callback is re-sent after these waits, as WeCom does


@dataclass
class Msg(pipeline.Msg):
    redelivered: bool = False  # re-sent identically after its 200


# -- the flow of callbacks ----------------------------------------------------------------------------------


class Poster(pipeline.Poster):
    """pipeline.Poster, with WeCom's waits between attempts: a refused connection (web restarting) is re-sent a
    second later, not at once, so a short outage costs acknowledgement time rather than the message."""

    def __init__(self, port: int, timeout: float):
        super().__init__(port, timeout, retries=len(RETRY_DELAYS))

    def post(self, msg: Msg) -> None:
        msg.started = time.time()
        for attempt, wait in enumerate((0.0, *RETRY_DELAYS)):
            time.sleep(wait)
            msg.attempts = attempt + 1
            msg.status, msg.error = self._once(msg)
            if msg.status == 200:
                break
        msg.acked = time.time()

    def redeliver(self, msg: Msg) -> None:
        msg.redelivered = True
        self._once(msg)  # its answer does not matter: the desk must recognise the MsgId either way


class Flow:
    """An open loop of callbacks at `rate` until stopped, in a thread of its own."""

    def __init__(self, factory: pipeline.MessageFactory, poster: Poster, *, rate: float, contacts: int,
                 redelivery: float, seed: int, threads: int = 64):
        self.factory, self.poster, self.rate, self.redelivery = factory, poster, rate, redelivery
        self.contacts = pipeline.contacts_for("chaos", contacts)
        self.rng = random.Random(seed)  # noqa: S311 - not a secret
        self.msgs: list[Msg] = []
        self.stop = threading.Event()
        self.threads = threads
        self.thread = threading.Thread(target=self._run, name="chaos-flow", daemon=True)
        self.error: BaseException | None = None

    def _plan(self):
        n = 0
        while not self.stop.is_set():
            base = self.factory.new(f"x{n:06d}", self.contacts[n % len(self.contacts)])
            msg = Msg(**vars(base))
            self.msgs.append(msg)
            yield n / self.rate, msg
            n += 1

    def _send(self, msg: Msg, _due: float, due_wall: float) -> None:
        msg.scheduled = due_wall
        self.poster.post(msg)
        if msg.status == 200 and self.rng.random() < self.redelivery:
            time.sleep(self.rng.uniform(0.2, 2.0))
            self.poster.redeliver(msg)

    def _run(self) -> None:
        try:
            benchkit.open_loop(self._plan(), self._send, threads=self.threads, stop=self.stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(60)

    def sent(self) -> list[Sent]:
        """Every message whose send has finished (acknowledged or given up)."""
        return [Sent(m.tag, m.msg_id, m.contact, m.scheduled, m.acked if m.status == 200 else None)
                for m in list(self.msgs) if m.acked]


# -- the records ----------------------------------------------------------------------------------------


class Records:
    """Reads the desk's rows (through the two-host URL: whichever server is the primary) and the sandbox's
    deliveries; a read that fails while the database fails over is tried again."""

    def __init__(self, database_url: str, sandbox_port: int):
        self.database_url, self.sandbox_port = database_url, sandbox_port

    def deliveries(self) -> list[dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.sandbox_port, timeout=30)
        try:
            conn.request("GET", f"/sandbox/deliveries?corp_id={CORP_ID}&channel=app")
            return json.loads(conn.getresponse().read())["deliveries"]
        finally:
            conn.close()

    def rows(self, sent: list[Sent]) -> tuple[dict[str, dict], list[dict]]:
        keys = [f"msg:{s.msg_id}" for s in sent]
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=3) as conn:
            inbound = {key[4:]: {"id": pk, "status": status} for pk, key, status in conn.execute(
                f"SELECT id, natural_key, status FROM {INBOUND} WHERE natural_key = ANY(%s)",  # noqa: S608
                [keys])}
            ledger = [{"inbound_id": i, "status": st, "wecom_msgid": w, "last_error": e} for i, st, w, e in
                      conn.execute(f"SELECT inbound_id, status, wecom_msgid, last_error FROM {OUTBOUND} "  # noqa: S608
                                   "WHERE inbound_id = ANY(%s)", [[r["id"] for r in inbound.values()]])]
        return inbound, ledger

    def account(self, sent: list[Sent]) -> Accounting:
        for attempt in range(20):
            try:
                inbound, ledger = self.rows(sent)
                return account(sent, inbound, ledger, self.deliveries())
            except (psycopg.Error, OSError):
                if attempt == 19:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")


# -- the suite ------------------------------------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace, children: dict[str, Child], log_dir: Path, data_dir: Path):
        self.args, self.children, self.log_dir = args, children, log_dir
        b = args.port_base
        self.redis = RedisSentinels(data_dir, log_dir, children, base=6500 + b, sentinel_base=26500 + b)
        self.pg = PostgresPair(data_dir, log_dir, children, base=15432 + b)
        self.mq = RabbitNode(data_dir, log_dir, children, port=5700 + b, dist_port=25700 + b)
        self.web_port, self.sandbox_port = 8700 + b, 8750 + b
        self.restarts: Counter = Counter()  # unexpected exits, by role, seen by the supervisor
        self.expected_down: set[str] = set()
        self.supervising = threading.Event()
        self.lock = threading.Lock()
        self.windows: list[Window] = []
        self.flow: Flow | None = None
        self.last_progress = time.monotonic()
        self.resolved: set[str] = set()  # tags of messages with their outcome (answered, refused, unacked)

    # -- servers and the app --------------------------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        self.redis.start()
        self.pg.start()
        self.mq.start()
        print(f"servers up in {time.monotonic() - t0:.0f} s: Redis {self.redis.master_url()} + replica + Sentinels "
              f"{self.redis.sentinels}; PostgreSQL {self.pg.url(DATABASE)}; RabbitMQ {self.mq.url}", flush=True)
        self.database_url = self.pg.url(DATABASE)
        ns = argparse.Namespace(settings=self.args.settings, database_url=self.database_url,
                                redis_url=self.redis.master_url(), broker_url=self.mq.url,
                                log_level=self.args.log_level, worker_poll_ms=100)
        self.env = pipeline.child_env(ns, self.web_port, self.sandbox_port)
        # The app finds the Redis master through the Sentinels; REDIS_URL keeps the database number.
        self.env.update(REDIS_SENTINELS=self.redis.sentinels, REDIS_SENTINEL_MASTER="chaos")
        callback_url = pipeline.set_up_tenant(ns, self.env, self.sandbox_port)
        self.callback_path = urlsplit(callback_url).path
        for role in APP_ROLES:
            self.start_role(role)
        self.records = Records(self.database_url, self.sandbox_port)
        print(f"app up {time.monotonic() - t0:.0f} s after the start", flush=True)

    def start_role(self, role: str) -> None:
        old_log = self.log_dir / f"{role}.log"
        if old_log.exists():  # a restart: keep the previous run's log beside it
            old_log.rename(self.log_dir / f"{role}.{len(list(self.log_dir.glob(role + '.*.log'))) + 1}.log")
        if role == "sandbox":
            child = benchkit.sandbox_child(self.env, self.log_dir, port=self.sandbox_port,
                                           callback_url=f"http://127.0.0.1:{self.web_port}{self.callback_path}",
                                           secret=pipeline.APP_SECRET)
            self.children["sandbox"] = child
            wait_for(lambda: http_ok(self.sandbox_port, "/sandbox/health"), timeout=60, what="the sandbox",
                     child=child)
        elif role == "web":
            old = self.children.get("web")
            child = benchkit.web_child(self.env, self.log_dir, port=self.web_port, workers=self.args.web_workers,
                                       server=self.args.web_server, threads=self.args.web_threads)
            child.name = "web"
            self.children["web"] = child
            wait_for(lambda: http_ok(self.web_port, "/healthz"), timeout=90, what=self.args.web_server, child=child)
            if old is not None:
                old.stop()
        elif role == "worker":
            self.children["worker"] = benchkit.worker_child(self.env, self.log_dir, processes=1,
                                                            threads=self.args.worker_threads)
        else:
            self.children["scheduler"] = Child("scheduler", [sys.executable, "manage.py", "scheduler"], self.env,
                                               self.log_dir)

    def supervise(self) -> None:
        """The supervisor: a role that exited without being told is started again a second later, and counted."""
        while self.supervising.is_set():
            for role in APP_ROLES:
                with self.lock:
                    child = self.children.get(role)
                    if not self.supervising.is_set() or role in self.expected_down or child is None or child.alive():
                        continue
                    code = child.proc.returncode
                    self.restarts[role] += 1
                    note = f"{role} exited by itself (status {code}); restarted"
                    print(f"  ! {note}\n{child.tail(800)}", flush=True)
                    if self.windows:
                        self.windows[-1].notes.append(note)
                    time.sleep(1)
                    try:
                        self.start_role(role)
                    except BenchError as exc:
                        print(f"  ! could not restart {role}: {exc}", flush=True)
            time.sleep(0.5)

    def shut_down(self) -> None:
        self.supervising.clear()
        with self.lock:  # a restart in progress finishes first
            pass
        if self.flow is not None:
            self.flow.stop.set()

    def kill_and_restart(self, role: str) -> None:
        with self.lock:
            self.expected_down.add(role)
            kill_group(self.children[role])
            time.sleep(1)  # the supervisor's RestartSec
            self.start_role(role)
            self.expected_down.discard(role)

    def kill_one_web_process(self) -> None:
        """SIGKILL one of the web server's worker processes (gunicorn's or uvicorn's), as one web replica of several
        dies: the others go on answering (they share the listening socket, as replicas share a Service) and the
        server's master starts another."""
        master, server = self.children["web"].proc.pid, self.args.web_server
        workers = benchkit.web_processes(master, server)
        if not workers:
            raise BenchError(f"no {server} worker process to kill")
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(benchkit.web_processes(master, server)) == len(workers)
                 and workers[0] not in benchkit.web_processes(master, server),
                 timeout=90, what=f"{server}'s new worker")

    # -- faults ---------------------------------------------------------------------------------------------

    def sandbox_post(self, path: str, body: dict) -> None:
        benchkit.sandbox_post(self.sandbox_port, path, body)

    def inject(self, fault: str) -> Callable[[], None] | None:
        """Inject `fault`; return once it is undone (the recovery action taken), or return the undo to call after
        --hold seconds. What happens after the undo (re-sync, rejoin) is the returned cleanup's business."""
        hold = self.args.hold
        if fault == "web-kill" and self.args.web_workers > 1:
            self.kill_one_web_process()
        elif fault in ("worker-kill", "web-kill"):
            self.kill_and_restart(fault.split("-")[0])
        elif fault == "redis-failover":
            name, port = self.redis.kill_master()
            took = wait_for(lambda: self.redis.failed_over(port), timeout=60, what="the Sentinel failover")
            print(f"  Sentinels promoted {self.redis.master_name()} in {took:.1f} s", flush=True)
            return lambda: self.redis.rejoin(name)
        elif fault == "postgres-failover":
            old = self.pg.kill_primary()
            new = self.pg.promote()
            print(f"  {old} killed, {new} promoted", flush=True)
        elif fault == "rabbitmq-restart":
            self.mq.stop()
            took = self.mq.start()
            print(f"  RabbitMQ back in {took:.1f} s", flush=True)
        elif fault == "model-outage":
            self.sandbox_post("model/config", {"available": False, "down_mode": "503"})
            time.sleep(hold)
            self.sandbox_post("model/config", {"available": True})
        elif fault == "wecom-outage":
            self.sandbox_post("faults", {"path": "message/send", "errcode": -1, "count": 1_000_000})
            time.sleep(hold)
            self.sandbox_post("faults/clear", {})
        elif fault == "model-delay":
            self.sandbox_post("model/config", {"latency": self.args.model_delay})
            time.sleep(hold)
            self.sandbox_post("model/config", {"latency": 0})
        else:
            raise BenchError(f"unknown fault {fault!r}")
        return None

    # -- one fault, from clean flow to settled --------------------------------------------------------------

    def settled(self, flow: Flow, before: float) -> bool:
        """Every message scheduled before `before` has its outcome (answered, refused or unacknowledged) and
        nothing is left in flight."""
        if any(m.scheduled and m.scheduled < before and not m.acked for m in list(flow.msgs)):
            return False  # sends still retrying
        # Only the messages without an outcome yet are looked up again (the final count rereads them all).
        sent = [s for s in flow.sent() if s.scheduled < before and s.tag not in self.resolved]
        try:
            acc = self.records.account(sent)
        except (psycopg.Error, OSError):
            return False
        self.resolved.update(o.sent.tag for o in acc.outcomes if o.kind != "lost")
        waiting = acc.by_kind()["lost"]
        if time.monotonic() - self.last_progress >= 15:
            self.last_progress = time.monotonic()
            print(f"  ... {waiting} messages not answered yet, {acc.unsettled} rows in flight", flush=True)
        return not waiting and not acc.unsettled

    def run_fault(self, fault: str, flow: Flow) -> Window:
        start = time.time()
        window = Window(fault, start, start, start, start)
        self.windows.append(window)
        time.sleep(self.args.clean)  # clean flow before the fault: its messages are the baseline
        print(f"{fault}: injecting ...", flush=True)
        window.injected = time.time()
        cleanup = self.inject(fault)
        window.recovered = time.time()
        print(f"  undone after {window.recovered - window.injected:.1f} s; waiting for answers to resume",
              flush=True)

        def resumed() -> bool:
            acc = self.records.account([s for s in flow.sent() if s.scheduled >= window.injected])
            window.resumed = first_answer_after(acc, window.injected)
            return window.resumed is not None

        try:
            wait_for(resumed, timeout=self.args.settle_timeout, what=f"answers after {fault}", interval=1)
            print(f"  answers resumed {window.resumed - window.injected:.1f} s after the injection", flush=True)
        except BenchError as exc:
            window.notes.append(str(exc))
            print(f"  ! {exc}", flush=True)
        if cleanup:
            cleanup()
        mark = time.time()
        try:
            took = wait_for(lambda: self.settled(flow, mark), timeout=self.args.settle_timeout,
                            what=f"every message to settle after {fault}", interval=2)
            print(f"  settled {took:.1f} s later", flush=True)
        except BenchError as exc:
            window.notes.append(str(exc))
            print(f"  ! {exc}", flush=True)
        return window

    def run(self) -> tuple[list[Row], Accounting, list[str]]:
        factory = pipeline.MessageFactory(self.callback_path, self.args.seed)
        poster = Poster(self.web_port, self.args.timeout)
        flow = self.flow = Flow(factory, poster, rate=self.args.rate, contacts=self.args.contacts,
                                redelivery=self.args.redelivery, seed=self.args.seed)
        self.supervising.set()
        supervisor = threading.Thread(target=self.supervise, name="supervisor", daemon=True)
        supervisor.start()
        warm = Window("warm-up", time.time(), 0, time.time(), time.time())
        flow.start()
        print(f"flow: {self.args.rate:g} callbacks/s from {self.args.contacts} contacts, "
              f"{self.args.redelivery:.0%} re-sent after their 200", flush=True)
        wait_for(lambda: first_answer_after(self.records.account(flow.sent()), warm.start) is not None,
                 timeout=120, what="the first answers (warm-up)", interval=1)
        for fault in self.args.faults:
            if flow.error:
                raise BenchError(f"the flow of callbacks failed: {flow.error!r}")
            self.run_fault(fault, flow)
        flow.finish()
        end = time.time()
        print("flow stopped; waiting for the last messages to settle ...", flush=True)
        try:
            wait_for(lambda: self.settled(flow, end + 1), timeout=self.args.settle_timeout, what="the last messages",
                     interval=2)
        except BenchError as exc:
            print(f"  ! {exc}", flush=True)
        self.supervising.clear()
        supervisor.join(10)
        acc = self.records.account(flow.sent())
        warm.end = self.windows[0].start if self.windows else end
        for k, window in enumerate(self.windows):
            window.end = self.windows[k + 1].start if k + 1 < len(self.windows) else end + 1
        rows = [summarise(w, acc) for w in [warm, *self.windows]]
        # The raw material, for a closer look at a run (--keep-logs keeps it).
        (self.log_dir / "messages.json").write_text(json.dumps({
            "windows": [vars(w) for w in [warm, *self.windows]],
            "messages": [{"tag": m.tag, "contact": m.contact, "msg_id": m.msg_id, "scheduled": m.scheduled,
                          "started": m.started, "acked": m.acked, "attempts": m.attempts, "status": m.status,
                          "redelivered": m.redelivered} for m in flow.msgs if m.scheduled],
            "outcomes": {o.sent.tag: [o.kind, o.reason, [d["at"] for d in o.deliveries]] for o in acc.outcomes},
        }))
        notes = [f"{w.name}: {n}" for w in self.windows for n in w.notes]
        notes += [f"{len(acc.extras)} deliveries no message accounts for" if acc.extras else "",
                  f"{len(acc.dropped)} answers dropped by WeCom's per-member minute limit" if acc.dropped else "",
                  f"{acc.unsettled} rows still in flight at the end" if acc.unsettled else "",
                  f"{sum(1 for m in flow.msgs if m.redelivered)} callbacks re-sent after their 200"]
        return rows, acc, [n for n in notes if n]


# -- report ---------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    lines = ["| fault | held | callbacks acked | lost | duplicates | refused (reason) | not acked | acks > 5 s "
             "(worst) | answers resume after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reasons = ", ".join(f"{n} {reason}" for reason, n in r.refused_reasons.most_common()) or "0"
        lost = f"**{r.lost}**" if r.lost else "0"
        dup = f"**{r.duplicates}**" if r.duplicates else "0"
        resume = f"{r.resume:.1f} s" if r.resume is not None else ("-" if r.name == "warm-up" else "**never**")
        lines.append(f"| {r.name} | {r.held:.1f} s | {r.acked} | {lost} | {dup} | {reasons} | {r.unacked} | "
                     f"{r.acks_over_5s} ({ms(r.worst_ack)}) | {resume} |")
    return "\n".join(lines)


def record(entry: str) -> None:
    """Replace the generated part of docs/CHAOS.md (between its markers) with this run's entry."""
    begin, end = "<!-- bench/chaos.py results: begin -->", "<!-- bench/chaos.py results: end -->"
    doc = CHAOS_MD.read_text(encoding="utf-8") if CHAOS_MD.exists() else "# Chaos suite\n"
    if begin not in doc:
        doc = doc.rstrip("\n") + f"\n\n## Latest run\n\n{begin}\n{end}\n"
    before, rest = doc.split(begin, 1)
    after = rest.split(end, 1)[1]
    CHAOS_MD.write_text(before + begin + "\n" + entry.strip() + "\n" + end + after, encoding="utf-8")
    print(f"recorded in {CHAOS_MD}")


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = benchkit.argument_parser(__doc__)
    parser.add_argument("--rate", type=float, default=10, help="callbacks per second (open loop)")
    parser.add_argument("--contacts", type=int, default=60, help="members the callbacks cycle over")
    parser.add_argument("--redelivery", type=float, default=0.1,
                        help="share of callbacks re-sent identically after their 200")
    parser.add_argument("--faults", default="all", help=f"comma-separated, in order, from: {', '.join(FAULTS)}")
    parser.add_argument("--hold", type=float, default=15, help="seconds an outage or delay lasts")
    parser.add_argument("--model-delay", type=float, default=3, help="model-delay: seconds each model call takes")
    parser.add_argument("--clean", type=float, default=5, help="seconds of clean flow before each fault")
    parser.add_argument("--settle-timeout", type=float, default=180,
                        help="longest wait for answers to resume, and for everything to settle, after a fault")
    parser.add_argument("--timeout", type=float, default=5, help="client timeout per callback (WeCom's: 5 s)")
    # As deployed: gunicorn, two web processes (one process killed left callbacks unacknowledged: docs/CHAOS.md).
    benchkit.add_web_server_options(parser, workers=2, server="gunicorn")
    parser.add_argument("--worker-threads", type=int, default=8, help="rundramatiq --threads")
    parser.add_argument("--settings", default="config.settings.local", help="DJANGO_SETTINGS_MODULE of the app")
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the app")
    parser.add_argument("--port-base", type=int, default=0,
                        help="added to every port (Redis 6500-6501, Sentinels 26500-26502, PostgreSQL 15432-15433, "
                             "RabbitMQ 5700 and 25700, web 8700, sandbox 8750): two runs at once need different ones")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="write the table into docs/CHAOS.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and the servers' data")
    args = parser.parse_args(argv)
    # benchkit.run's loopback check: the servers are the suite's own, on 127.0.0.1 by construction.
    args.database_url, args.redis_url = "postgresql://127.0.0.1", "redis://127.0.0.1"
    args.faults = list(FAULTS) if args.faults == "all" else [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in args.faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; choose from {', '.join(FAULTS)}")
    if args.rate <= 0 or args.contacts < 1:
        parser.error("--rate and --contacts must be positive")
    if args.rate * 60 / args.contacts > pipeline.MAX_PER_CONTACT_PER_MINUTE:
        parser.error("more than 20 messages per contact a minute: WeCom's per-member limit would drop answers; "
                     "use more --contacts")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-data-"))
    os.chmod(data_dir, 0o755)  # noqa: S103 - PostgreSQL runs as `postgres` under it (its own folder is 0700)
    outcome: dict = {}

    def body(children: dict[str, Child], log_dir: Path) -> bool:
        started = time.monotonic()
        suite = Suite(args, children, log_dir, data_dir)
        suite.start()
        try:
            rows, acc, notes = suite.run()
        finally:  # before benchkit.run stops the children: no supervisor may start them again, no flow feed them
            suite.shut_down()
        outcome.update(rows=rows, acc=acc)
        failed = [r.name for r in rows if r.lost or r.duplicates]
        command = " ".join(["make chaos" if not argv else ".venv/bin/python bench/chaos.py",
                            *[a for a in argv if a not in ("--record", "--keep-logs")]])
        kinds = acc.by_kind()
        web = benchkit.web_server_line(server=args.web_server, workers=args.web_workers, threads=args.web_threads)
        entry = (f"`{command}` on {time.strftime('%Y-%m-%d')}, {time.monotonic() - started:.0f} s in all.\n\n"
                 f"Machine: {benchkit.machine_line()}, shared with other work while it ran. "
                 f"Code: {benchkit.git_state()}. Flow: {args.rate:g} callbacks/s from {args.contacts} contacts, "
                 f"{args.redelivery:.0%} re-sent after their 200; {web}, one worker "
                 f"process with {args.worker_threads} threads, the scheduler; outages held {args.hold:g} s, model "
                 f"delay {args.model_delay:g} s.\n\n"
                 + table(rows) + "\n\n"
                 + f"All {sum(kinds.values())} callbacks: {kinds['answered']} answered, {kinds['refused']} refused, "
                 f"{kinds['lost']} lost, {kinds['unacked']} never acknowledged. "
                 + "".join(f"{n}. " for n in notes)
                 + ("\n\nEvery fault: 0 lost, 0 duplicates ✓" if not failed
                    else f"\n\n**Lost or duplicated messages under: {', '.join(failed)}** ✗") + "\n")
        print()
        print(entry)
        if args.record:
            record(entry)
        return not failed

    try:
        return benchkit.run(body, args, name="chaos")
    finally:
        if args.keep_logs:
            print(f"servers' data: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
