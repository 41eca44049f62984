"""Benchmark of the answer pipeline end to end: stored inbound message -> the WeCom sandbox's receipt of the answer.

    .venv/bin/python bench/pipeline.py [--rate 100] [--duration 20] [--contacts 200] [--redelivery 0.3]
                                       [--ramp 10,20,30,40,50,75,100,150,200,300] [--step-duration 10]
                                       [--backlog 3000] [--web-workers 2] [--worker-processes 1] [--worker-threads 8]
                                       [--web-server gunicorn|uvicorn] [--web-threads 8] [--floor 3000] [--record]

Everything runs on this machine, over loopback, against the benchmark's OWN database
(`wecomdesk_bench_pipeline`, created if missing; its `bench` tenant is dropped and recreated every run), its own
Redis logical database (8) and Dramatiq namespace (`dramatiq-bench-pipeline`): it never touches the developer's
or the tests' data. It starts the WeCom sandbox (`python -m wecom_sandbox`, whose fake model answers at zero
latency), the web (gunicorn with config.wsgi as deployed, or `--web-server uvicorn`), a real `manage.py
rundramatiq` worker and `manage.py scheduler`, sets the tenant up (a
self-built app with Tencent's sample credentials, an AI provider on the fake model, a few knowledge entries,
rate limits far above the load), warms the pipeline up, then:

1. fixed rate, open loop: encrypted callbacks `echo:<tag> <question>` from `--contacts` members, scheduled on a
   fixed clock. The fake model answers `<tag> <question>`, so each answer the sandbox records is matched to its
   message. Per message: stored (InboundMessage.received_at, web process) -> the sandbox's delivery record
   (Delivery.at, sandbox process); both are time.time() of processes on this host, so they are comparable.
   Also callback sent -> delivered (sender's clock, same host), the ack latency, and the stages in between
   from the trace events. `--redelivery` (30%) of the messages are sent a second time, identically, 0-3 s after
   the first (WeCom re-sends what it thinks was missed): extra requests, never an extra answer.
2. peak, a ramp of open-loop steps (`--ramp` rates, `--step-duration` each, fresh contacts): per step the offered,
   stored and delivered rates and the step's stored -> delivered latency; the highest step that keeps up is the
   sustained peak. After the last step the backlog drains with the web server idle (the worker's rate alone).

3. pipeline alone (`--backlog N`): the worker is paused (SIGSTOP) while N callbacks are stored, then resumed; the
   rate at which it turns the stored backlog into deliveries is the pipeline's own peak, the web server idle.
4. the floor (`--floor N`, bench/floor.py): N messages answered with no framework (psycopg, httpx) against the same
   database server and sandbox; our CPU per message (phases 1 and 3) divided by the floor's.

Every message must end in exactly one delivery (no drops, no duplicates, no extras), else the run exits 1.
`--record` writes the results into docs/BENCHMARKS.md (its own "## Pipeline" section only).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import http.client
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import benchkit  # bench/ is on sys.path when run as a script
import floor
import psycopg
from benchkit import (
    CORP_ID,
    INBOUND,
    OUTBOUND,
    TENANT,
    TRACE,
    BenchError,
    Child,
    TextCallbacks,
    dist,
    entry_title,
    free_port,
    group_pids,
    ms,
    percentile,
    run_manage,
)

APP_SECRET = "bench-pipeline-secret"
NAMESPACE = "dramatiq-bench-pipeline"
SECTION_TITLE = "## Pipeline: stored message to the sandbox's receipt of the answer"
# WeCom silently drops the 31st message a minute to one member; the desk paces at 28 (OUTBOUND_MEMBER_PER_MINUTE).
# Keep every contact well below it, so pacing never shows up as pipeline latency.
MAX_PER_CONTACT_PER_MINUTE = 20
QUESTIONS = ["怎么退货", "退款多久到账", "什么时候发货", "怎么开发票", "你好"]
KNOWLEDGE = [
    ("如何申请退货？", "收到商品 7 天内可在「我的订单」中申请无理由退货，商品需保持完好。", ["退货", "售后"]),
    ("退款多久到账？", "退货签收后 1-3 个工作日内原路退款。", ["退款", "到账"]),
    ("什么时候发货？", "工作日 16:00 前付款的订单当天发货，其余次日发货。", ["发货", "物流"]),
]
SETUP_SCRIPT = """
from django_tenants.utils import schema_context
from conversations.ai.models import AIProvider
from conversations.models import DeskSettings, FallbackScript
from kb.services import create_entry
import json, os
spec = json.loads(os.environ["BENCH_SETUP"])
with schema_context(spec["tenant"]):
    AIProvider.objects.all().delete()
    AIProvider.objects.create(base_url=spec["model_base_url"], model="sandbox-chat", api_key="bench-model-key")
    for question, answer, tags in spec["knowledge"]:
        create_entry(question=question, answer=answer, tags=tags)
    FallbackScript.objects.create(name="默认", text="抱歉，服务繁忙，请稍后再试。", is_default=True)
    desk = DeskSettings.current()
    desk.user_rate_limit = desk.tenant_rate_limit = spec["limit"]
    desk.max_consecutive_fallbacks = 1000
    desk.save()
print("ok")
"""


class CpuMeter(benchkit.CpuMeter):
    """CPU used per role (bench/benchkit.py); Redis and RabbitMQ count together as the broker."""

    ROLES = ("sender", "web", "worker", "scheduler", "sandbox", "postgres", "redis/mq", "other", "idle")
    BROKER_ROLE = "redis/mq"


# -- messages and sending -------------------------------------------------------------------------


@dataclass
class Msg:
    tag: str  # unique; the fake model's answer starts with it
    contact: str
    msg_id: str
    path: str  # signed query string included
    body: bytes
    scheduled: float = 0.0  # wall clock (time.time()) of the planned send
    started: float = 0.0  # wall clock when the POST began
    acked: float = 0.0  # wall clock when the 200 (or the error) came back
    status: int | None = None  # of the last attempt
    error: str | None = None
    attempts: int = 0
    step: int = 0


class MessageFactory:
    """Text callbacks `echo:<tag> <question>`: the fake model answers `<tag> <question>`."""

    def __init__(self, callback_path: str, seed: int):
        self.callbacks = TextCallbacks(callback_path, seed)

    def new(self, tag: str, contact: str) -> Msg:
        question = QUESTIONS[self.callbacks.created % len(QUESTIONS)]
        msg_id, prepared = self.callbacks.new(member=contact, text=f"echo:{tag} {question}")
        return Msg(tag, contact, msg_id, prepared.url, prepared.body)


class Poster:
    """POSTs prepared callbacks over plain http.client, a new connection each (as WeCom does). Like WeCom, a
    request answered with anything but 200 (or not answered within the timeout) is re-sent identically, up to
    `retries` times; a re-sent message that was stored after all is recognised as a duplicate by the server."""

    def __init__(self, port: int, timeout: float, retries: int = 3):
        self.port, self.timeout, self.retries = port, timeout, retries

    def post(self, msg: Msg) -> None:
        msg.started = time.time()
        for attempt in range(1 + self.retries):
            msg.attempts = attempt + 1
            msg.status, msg.error = self._once(msg)
            if msg.status == 200:
                break
        msg.acked = time.time()

    def _once(self, msg: Msg) -> tuple[int | None, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("POST", msg.path, body=msg.body,
                         headers={"Content-Type": "text/xml; charset=utf-8", "Connection": "close"})
            response = conn.getresponse()
            response.read()
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:
            return None, type(exc).__name__
        finally:
            conn.close()


def open_loop(poster: Poster, schedule: list[tuple[float, Msg]], threads: int,
              stop: threading.Event | None = None) -> float:
    """Send each message at its offset (s) from now; returns the dispatcher's worst lateness. Messages not sent
    because `stop` was set keep scheduled == 0."""

    def send(msg: Msg, _due: float, due_wall: float) -> None:
        msg.scheduled = due_wall
        poster.post(msg)

    return benchkit.open_loop(schedule, send, threads=threads, stop=stop)


def contacts_for(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-c{n:04d}" for n in range(count)]


# -- the benchmark's database ---------------------------------------------------------------------


def sent_count(conn) -> int:
    return conn.execute(f"SELECT count(*) FROM {OUTBOUND} WHERE status = 'sent'").fetchone()[0]  # noqa: S608


def wait_delivered(conn, target: int, *, timeout: float, children: list[Child]) -> float | None:
    """Poll (4/s) until `target` ledger rows are sent; returns when, or None after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sent_count(conn) >= target:
            return time.time()
        for child in children:
            if not child.alive():
                raise BenchError(f"{child.name} exited:\n{child.tail()}")
        time.sleep(0.25)
    return None


def fetch_rows(conn, msg_ids: list[str]) -> dict[str, dict]:
    """Per MsgId: the inbound row, its ledger row and the timing trace events."""
    keys = [f"msg:{m}" for m in msg_ids]
    rows: dict[str, dict] = {}
    for pk, key, received, processed, status in conn.execute(
            f"SELECT id, natural_key, received_at, processed_at, status FROM {INBOUND} "  # noqa: S608
            "WHERE natural_key = ANY(%s)", [keys]):
        rows[key[4:]] = {"id": pk, "received": received.timestamp(),
                         "processed": processed.timestamp() if processed else None, "status": status}
    by_id = {r["id"]: r for r in rows.values()}
    for key, created, sent, status, attempts in conn.execute(
            f"SELECT idempotency_key, created_at, sent_at, status, attempts FROM {OUTBOUND} "  # noqa: S608
            "WHERE idempotency_key = ANY(%s)", [[f"inbound:{i}:1" for i in by_id]]):
        row = by_id[int(key.split(":")[1])]
        row.update(out_created=created.timestamp(), out_sent=sent.timestamp() if sent else None,
                   out_status=status, attempts=attempts)
    for inbound_id, stage, created, detail in conn.execute(
            f"SELECT inbound_id, stage, created_at, detail FROM {TRACE} "  # noqa: S608
            "WHERE inbound_id = ANY(%s) AND stage IN ('retrieved', 'llm_call', 'deferred')", [list(by_id)]):
        row = by_id[inbound_id]
        row[stage] = created.timestamp()
        row[f"{stage}_ms"] = (detail or {}).get("ms")
    return rows


def fetch_deliveries(sandbox_port: int) -> list[dict]:
    conn = http.client.HTTPConnection("127.0.0.1", sandbox_port, timeout=60)
    try:
        conn.request("GET", f"/sandbox/deliveries?corp_id={CORP_ID}")
        return json.loads(conn.getresponse().read())["deliveries"]
    finally:
        conn.close()


# -- results --------------------------------------------------------------------------------------


@dataclass
class Matched:
    """The messages of one phase joined with the database rows and the sandbox's deliveries."""

    msgs: list[Msg]
    rows: dict[str, dict]
    delivered_at: dict[str, float]  # tag -> Delivery.at of its one delivered answer
    problems: list[str] = field(default_factory=list)

    def e2e(self, msgs: list[Msg] | None = None) -> list[float]:
        """Stored -> the sandbox's receipt, seconds."""
        out = []
        for m in msgs if msgs is not None else self.msgs:
            row = self.rows.get(m.msg_id)
            if row and m.tag in self.delivered_at:
                out.append(self.delivered_at[m.tag] - row["received"])
        return out


def match(msgs: list[Msg], rows: dict[str, dict], deliveries: list[dict], known_tags: set[str]) -> Matched:
    """Exactly one delivered answer per message, with the expected text and recipient; nothing else."""
    by_tag: dict[str, list[dict]] = {}
    for d in deliveries:
        tag = d["content"].split(" ", 1)[0]
        by_tag.setdefault(tag, []).append(d)
    result = Matched(msgs, rows, {})
    missing_rows = missing = duplicated = wrong = dropped = 0
    for m in msgs:
        if m.msg_id not in rows:
            missing_rows += 1
        mine = by_tag.get(m.tag, [])
        got = [d for d in mine if d["delivered"]]
        dropped += sum(1 for d in mine if d["dropped"] or d["duplicate"])
        if not got:
            missing += 1
            continue
        if len(got) > 1:
            duplicated += 1
        if got[0]["recipient"] != m.contact or not got[0]["content"].startswith(f"{m.tag} "):
            wrong += 1
        result.delivered_at[m.tag] = got[0]["at"]
    if missing_rows:
        result.problems.append(f"{missing_rows} messages not stored")
    if missing:
        result.problems.append(f"{missing} messages without a delivered answer")
    if duplicated:
        result.problems.append(f"{duplicated} messages answered more than once")
    if wrong:
        result.problems.append(f"{wrong} answers with the wrong text or recipient")
    if dropped:
        result.problems.append(f"{dropped} deliveries dropped (member minute limit) or deduplicated by the sandbox")
    unknown = [t for t in by_tag if t not in known_tags]
    if unknown:
        result.problems.append(f"{sum(len(by_tag[t]) for t in unknown)} deliveries that answer no message sent")
    return result


@dataclass
class Phase1:
    rate: float
    duration: float
    contacts: int
    matched: Matched
    lateness: float
    wall: float
    cpu: dict[str, float]  # while sending
    drain_after_last_send: float | None
    cpu_all: dict[str, float]  # from the first send until the last answer
    wall_all: float
    redelivered: list[Msg] = field(default_factory=list)  # identical second sends, as WeCom makes


@dataclass
class Step:
    rate: float
    start: float  # wall
    end: float
    msgs: list[Msg]
    cpu: dict[str, float]
    backlog_at_end: int | None = None


# -- setup ----------------------------------------------------------------------------------------


def child_env(args, port: int, sandbox_port: int) -> dict[str, str]:
    env = benchkit.child_env(settings=args.settings, database_url=args.database_url, redis_url=args.redis_url,
                             broker_url=args.broker_url, namespace=NAMESPACE, key_prefix="wecomdesk-bench-pipeline",
                             port=port, sandbox_port=sandbox_port, log_level=args.log_level,
                             worker_poll_ms=args.worker_poll_ms)
    # Ceilings far above the load: this measures the pipeline, not the rate-limit policy.
    env.update(GLOBAL_RATE_LIMIT="1000000/minute", OUTBOUND_APP_RATE_LIMIT="1000000/minute")
    return env


def set_up_tenant(args, env: dict[str, str], sandbox_port: int) -> str:
    callback_url = benchkit.set_up_tenant(env, database_url=args.database_url, redis_url=args.redis_url,
                                          owner="bench/pipeline.py", name="Bench pipeline", secret=APP_SECRET)
    spec = {"tenant": TENANT, "model_base_url": f"http://127.0.0.1:{sandbox_port}/v1", "knowledge": KNOWLEDGE,
            "limit": 10_000_000}
    run_manage(["shell", "-c", SETUP_SCRIPT], {**env, "BENCH_SETUP": json.dumps(spec, ensure_ascii=False)})
    return callback_url


def profile_start(children: dict[str, Child], names: list[str], seconds: float, out_dir: Path,
                  prefix: str = "") -> list:
    """py-spy (if installed) on every process of the named children, collapsed stacks into out_dir."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("--profile: py-spy is not installed (pip install py-spy); not profiling", file=sys.stderr)
        return []
    procs = []
    for name in names:
        for pid in group_pids(children[name].proc.pid):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "multiprocessing.resource_tracker" in cmd or "semaphore_tracker" in cmd:
                continue
            out = out_dir / f"{prefix}{name}-{pid}.txt"
            procs.append(subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(seconds) + 1), "-r", "50",
                                           "-f", "raw", "-o", str(out), "--nonblocking", "--gil"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


# -- the run --------------------------------------------------------------------------------------


def run_phase1(args, factory: MessageFactory, poster: Poster, meter: CpuMeter, conn, sandbox_port: int,
               children: dict[str, Child], log_dir: Path) -> tuple[Phase1, list[Msg]]:
    total = int(round(args.rate * args.duration))
    contacts = contacts_for("p1", args.contacts)
    msgs = [factory.new(f"p1-{i:06d}", contacts[i % len(contacts)]) for i in range(total)]
    schedule = [(i / args.rate, m) for i, m in enumerate(msgs)]
    # WeCom re-sends a callback it thinks was missed: a share of the messages goes out again, identically, 0-3 s
    # after the first send (often before its 200), on top of the rate.
    chooser = random.Random(args.seed)
    redelivered = []
    for i in sorted(chooser.sample(range(total), int(round(total * args.redelivery)))):
        again = dataclasses.replace(msgs[i])
        redelivered.append(again)
        schedule.append((i / args.rate + chooser.uniform(0, 3), again))
    schedule.sort(key=lambda item: item[0])
    base_sent = sent_count(conn)
    print(f"phase 1: {args.rate:g}/s for {args.duration:g} s over {args.contacts} contacts "
          f"({total} messages, {len(redelivered)} of them re-sent) ...", flush=True)
    spies = profile_start(children, ["web", "worker"], args.duration, log_dir) if args.profile else []
    before = meter.snapshot()
    lateness = open_loop(poster, schedule, args.sender_threads)
    after = meter.snapshot()
    last_send = max(m.acked for m in msgs + redelivered)
    done = wait_delivered(conn, base_sent + total, timeout=args.drain_timeout, children=list(children.values()))
    drained = meter.snapshot()
    for spy in spies:
        spy.wait(30)
    wall = last_send - min(m.scheduled for m in msgs)
    rows = fetch_rows(conn, [m.msg_id for m in msgs])
    phase = Phase1(args.rate, args.duration, args.contacts, Matched(msgs, rows, {}), lateness, wall,
                   meter.usage(before, after), (done - last_send) if done else None,
                   meter.usage(before, drained), drained.at - before.at, redelivered)
    return phase, msgs


def run_ramp(args, factory: MessageFactory, poster: Poster, meter: CpuMeter, conn,
             children: dict[str, Child]) -> tuple[list[Step], list[Msg], dict]:
    rates = [float(r) for r in args.ramp.split(",") if r.strip()]
    total = int(sum(r * args.step_duration for r in rates))
    # Enough fresh contacts that none gets more than MAX_PER_CONTACT_PER_MINUTE within any minute of the ramp.
    span = min(60.0, args.step_duration * len(rates))
    needed = int(math.ceil(max(rates) * span / MAX_PER_CONTACT_PER_MINUTE))
    contacts = contacts_for("p2", max(args.contacts, needed))
    print(f"phase 2: ramp {'/'.join(f'{r:g}' for r in rates)} msg/s, {args.step_duration:g} s each, over "
          f"{len(contacts)} contacts ({total} messages; preparing) ...", flush=True)
    steps: list[Step] = []
    all_msgs: list[Msg] = []
    n = 0
    for k, rate in enumerate(rates):
        count = int(round(rate * args.step_duration))
        step_msgs = []
        for _ in range(count):
            msg = factory.new(f"p2-{n:06d}", contacts[n % len(contacts)])
            msg.step = k
            step_msgs.append(msg)
            n += 1
        steps.append(Step(rate, 0, 0, step_msgs, {}))
        all_msgs += step_msgs
    base_sent = sent_count(conn)
    offset = 0.0
    schedule = []
    for step in steps:
        interval = 1.0 / step.rate
        schedule += [(offset + i * interval, m) for i, m in enumerate(step.msgs)]
        offset += args.step_duration
    # One continuous open loop. A side thread takes CPU snapshots at the step boundaries and stops the ramp once
    # the backlog (stored, not answered yet) exceeds --max-backlog seconds of the step's rate.
    snaps: list = []
    backlogs: list[int] = []
    halt, done_sending = threading.Event(), threading.Event()

    def watcher():
        side_conn = psycopg.connect(args.database_url, autocommit=True)
        try:
            base_stored = side_conn.execute(f"SELECT count(*) FROM {INBOUND}").fetchone()[0]  # noqa: S608
            t0 = time.monotonic() + 0.05
            for k in range(len(steps) + 1):
                delay = t0 + k * args.step_duration - time.monotonic()
                if delay > 0 and done_sending.wait(delay):
                    return
                snaps.append((time.time(), meter.snapshot()))
                if k == 0:
                    continue
                stored = side_conn.execute(f"SELECT count(*) FROM {INBOUND}").fetchone()[0] - base_stored  # noqa: S608
                backlog = stored - (sent_count(side_conn) - base_sent)
                backlogs.append(backlog)
                if backlog > steps[k - 1].rate * args.max_backlog and k < len(steps):
                    print(f"phase 2: backlog {backlog:,} after step {k} ({steps[k - 1].rate:g} msg/s): "
                          "stopping the ramp", flush=True)
                    halt.set()
                    return
        finally:
            side_conn.close()

    side = threading.Thread(target=watcher, daemon=True)
    side.start()
    try:
        lateness = open_loop(poster, schedule, args.sender_threads, stop=halt)
    finally:
        if not halt.is_set():
            side.join(args.step_duration + 5)  # its last snapshot is due when the last step ends
        done_sending.set()
        side.join(5)
    all_msgs = [m for m in all_msgs if m.scheduled]  # all of them are checked for exactly one answer
    if halt.is_set():  # the table shows the completed steps only
        steps = steps[:len(backlogs)]
    last_send = max(m.acked for m in all_msgs)
    for k, step in enumerate(steps):
        step.start = min(m.scheduled for m in step.msgs)
        step.end = step.start + args.step_duration
        if k + 1 < len(snaps):
            step.cpu = meter.usage(snaps[k][1], snaps[k + 1][1])
    print("phase 2: draining ...", flush=True)
    drain_start_sent = sent_count(conn) - base_sent
    drain_t0 = time.time()
    done = wait_delivered(conn, base_sent + len(all_msgs), timeout=args.drain_timeout,
                          children=list(children.values()))
    drain_end_sent = sent_count(conn) - base_sent
    info = {"lateness": lateness, "last_send": last_send, "drained_at": done,
            "drain_backlog": len(all_msgs) - drain_start_sent, "drain_done": drain_end_sent - drain_start_sent,
            "drain_seconds": (done or time.time()) - drain_t0, "contacts": len(contacts)}
    return steps, all_msgs, info


def run_backlog(args, factory: MessageFactory, poster: Poster, meter: CpuMeter, conn,
                children: dict[str, Child], log_dir: Path) -> tuple[dict, list[Msg]]:
    """Phase 3, the pipeline alone: the worker is paused (SIGSTOP) while `--backlog` callbacks are stored, then
    resumed; the rate at which it turns the stored backlog into deliveries is the pipeline's peak, with the web
    server idle (stored inbound -> the sandbox's receipt, the span the issue's targets are about)."""
    count = args.backlog
    contacts = contacts_for("p3", max(args.contacts, math.ceil(count / MAX_PER_CONTACT_PER_MINUTE)))
    msgs = [factory.new(f"p3-{i:06d}", contacts[i % len(contacts)]) for i in range(count)]
    base_sent = sent_count(conn)
    print(f"phase 3: storing a backlog of {count:,} messages from {len(contacts)} contacts with the worker "
          "paused ...", flush=True)
    worker = children["worker"]
    worker.pause()
    try:
        open_loop(poster, [(i / args.backlog_rate, m) for i, m in enumerate(msgs)], args.sender_threads)
        not_acked = sum(1 for m in msgs if not m.acked)
        if not_acked:
            raise BenchError(f"phase 3: {not_acked} callbacks of the backlog were not acknowledged")
        time.sleep(1)  # the web server's last commits
        before = meter.snapshot()
        resumed = time.time()
    finally:
        worker.resume()
    print("phase 3: worker resumed, draining ...", flush=True)
    # Sampled for about as long as the drain is expected to take at 200 msg/s.
    spies = profile_start(children, ["worker"], count / 200, log_dir, prefix="p3-") if args.profile else []
    done = wait_delivered(conn, base_sent + count, timeout=args.drain_timeout, children=list(children.values()))
    after = meter.snapshot()
    for spy in spies:
        spy.wait(30)
    seconds = (done or time.time()) - resumed
    cpu = meter.usage(before, after)
    return {"count": count, "contacts": len(contacts), "seconds": seconds, "drained": done is not None,
            "rate": count / seconds, "cpu": cpu,
            "ms_per_msg": {role: cores * seconds / count * 1000 for role, cores in cpu.items()}}, msgs


def backlog_table(info: dict) -> str:
    per = info["ms_per_msg"]
    return "\n".join([
        "| phase 3: the pipeline alone (stored backlog drained, web server idle) | value |",
        "|---|---|",
        f"| backlog | {info['count']:,} stored messages from {info['contacts']} contacts, worker paused while stored |",
        f"| drained in | {info['seconds']:.1f} s{'' if info['drained'] else ' (NOT all delivered: timed out)'} |",
        f"| **pipeline rate (stored → sandbox receipt)** | **{info['rate']:.0f} msg/s** |",
        f"| CPU cores while draining ({' / '.join(CpuMeter.ROLES)}) | {CpuMeter.cells(info['cpu'])} |",
        f"| CPU ms per message (worker / postgres / sandbox / redis/mq) | {per['worker']:.1f} / {per['postgres']:.1f}"
        f" / {per['sandbox']:.1f} / {per['redis/mq']:.1f} |",
    ])


def warm_up(factory: MessageFactory, poster: Poster, conn, children: dict[str, Child]) -> set[str]:
    """60 messages at 30/s through the whole pipeline (imports, jieba's dictionary, pools, the access token)."""
    contacts = contacts_for("warm", 30)
    msgs = [factory.new(f"warm-{i:04d}", contacts[i % len(contacts)]) for i in range(60)]
    base = sent_count(conn)
    open_loop(poster, [(i / 30, m) for i, m in enumerate(msgs)], 16)
    if wait_delivered(conn, base + len(msgs), timeout=120, children=list(children.values())) is None:
        raise BenchError("the warm-up messages were not all answered within 120 s; see the worker log")
    return {m.tag for m in msgs}


# -- report ---------------------------------------------------------------------------------------


def phase1_table(p: Phase1) -> str:
    m = p.matched
    msgs = m.msgs
    ok = sum(1 for x in msgs if x.status == 200)
    e2e = m.e2e()
    span = max(m.delivered_at.values(), default=0) - min(x.scheduled for x in msgs)
    delivered_rate = len(m.delivered_at) / max(1e-6, span)
    sent_to_delivered = [m.delivered_at[x.tag] - x.started for x in msgs if x.tag in m.delivered_at]
    sched_to_delivered = [m.delivered_at[x.tag] - x.scheduled for x in msgs if x.tag in m.delivered_at]
    ack = [x.acked - x.scheduled for x in msgs + p.redelivered]
    rows = [m.rows.get(x.msg_id, {}) for x in msgs]
    # Stages from the trace (all wall clocks of this host): queue + setup, retrieval, model, write, delivery.
    queue = [r["retrieved"] - r["retrieved_ms"] / 1000 - r["received"] for r in rows
             if r.get("retrieved") and r.get("retrieved_ms") is not None]
    retrieval = [r["retrieved_ms"] / 1000 for r in rows if r.get("retrieved_ms") is not None]
    llm = [r["llm_call_ms"] / 1000 for r in rows if r.get("llm_call_ms") is not None]
    write = [r["processed"] - r["llm_call"] for r in rows if r.get("processed") and r.get("llm_call")]
    delivery = [m.delivered_at[x.tag] - r["processed"] for x, r in zip(msgs, rows, strict=True)
                if r.get("processed") and x.tag in m.delivered_at]
    lines = [
        "| phase 1 (open loop) | value |",
        "|---|---|",
        f"| load | {p.rate:g} msg/s for {p.duration:g} s over {p.contacts} contacts, a new connection per callback |",
        f"| messages / acked 200 / re-sent after a non-200 or timeout (as WeCom does) | {len(msgs):,} / {ok:,} / "
        f"{sum(1 for x in msgs if x.attempts > 1):,} |",
        f"| redelivered identically 0-3 s after the first send (acked 200) | {len(p.redelivered):,} "
        f"({sum(1 for x in p.redelivered if x.status == 200):,}) |",
        f"| delivered rate (messages / (last delivery - first send)) | {delivered_rate:,.1f} msg/s |",
        "| **stored → sandbox receipt** p50 / p95 / p99 / max | **" + dist(e2e) + "** |",
        "| callback sent → sandbox receipt p50 / p95 / p99 / max | " + dist(sent_to_delivered) + " |",
        "| scheduled send → sandbox receipt p50 / p95 / p99 / max | " + dist(sched_to_delivered) + " |",
        "| ack (scheduled send → 200, redeliveries included) p50 / p95 / p99 / max | " + dist(ack) + " |",
        f"| acks over 1 s / over WeCom's 5 s deadline | {sum(1 for a in ack if a > 1):,} / "
        f"{sum(1 for a in ack if a > 5):,} |",
        "| stages p50 / p95 / p99 / max: stored → retrieval starts (queue, contact, lock, conversation) | "
        + dist(queue) + " |",
        "| ·· knowledge retrieval (trace `ms`) | " + dist(retrieval) + " |",
        "| ·· model call incl. breaker (trace `ms`) | " + dist(llm) + " |",
        "| ·· model answered → processed (answer + ledger row written) | " + dist(write) + " |",
        "| ·· processed → sandbox receipt (commit, deliver_outbound queue, lock, pacing, send) | "
        + dist(delivery) + " |",
        f"| sender lateness (max) | {ms(p.lateness)} |",
        f"| last answer after the last ack | {ms(p.drain_after_last_send)} |",
        "| CPU cores while sending (" + " / ".join(CpuMeter.ROLES) + ") | " + CpuMeter.cells(p.cpu) + " |",
        "| CPU cores from the first send to the last answer | " + CpuMeter.cells(p.cpu_all) + " |",
        "| CPU ms per message, first send to last answer (web / worker / postgres / sandbox / redis/mq / sender) | "
        + " / ".join(f"{p.cpu_all.get(k, 0) * p.wall_all / max(1, len(msgs)) * 1000:.1f}"
                     for k in ("web", "worker", "postgres", "sandbox", "redis/mq", "sender")) + " |",
    ]
    return "\n".join(lines) + "\n"


def ramp_table(steps: list[Step], matched: Matched, info: dict, latency_bound: float) -> tuple[str, float | None]:
    delivered_times = sorted(matched.delivered_at.values())
    stored_times = sorted(r["received"] for r in matched.rows.values())

    def count_between(times, a, b):
        import bisect
        return bisect.bisect_left(times, b) - bisect.bisect_left(times, a)

    lines = ["| step | offered msg/s | acked 200 msg/s | stored msg/s | delivered msg/s | backlog at end | stored → "
             "receipt p50 / p95 / max | ack p95 | CPU cores (" + " / ".join(CpuMeter.ROLES) + ") | keeps up |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    sustained = None
    broken = False
    for k, step in enumerate(steps):
        span = step.end - step.start
        acked = sum(1 for m in step.msgs if m.status == 200 and m.acked <= step.end)
        stored = count_between(stored_times, step.start, step.end)
        delivered = count_between(delivered_times, step.start, step.end)
        backlog = (sum(1 for t in stored_times if t < step.end)
                   - sum(1 for t in delivered_times if t < step.end))
        e2e = matched.e2e(step.msgs)
        p95 = percentile(e2e, 95)
        ack = [m.acked - m.scheduled for m in step.msgs]
        # Keeping up: the step's answers arrive within the bound and the backlog does not grow past what that
        # latency implies (the delivered column lags the stored one by the latency).
        keeps = (p95 <= latency_bound and backlog <= step.rate * latency_bound
                 and len(e2e) == len(step.msgs))
        if keeps and not broken:
            sustained = step.rate
        else:
            broken = True
        lines.append(f"| {k + 1} | {step.rate:g} | {acked / span:,.0f} | {stored / span:,.0f} | "
                     f"{delivered / span:,.0f} | {backlog:,} | {ms(percentile(e2e, 50))} / {ms(p95)} / "
                     f"{ms(max(e2e, default=float('nan')))} | {ms(percentile(ack, 95))} | "
                     f"{CpuMeter.cells(step.cpu) if step.cpu else '-'} | {'yes' if keeps else '**no**'} |")
    drain = ""
    if info["drain_backlog"] > 0:
        rate = info["drain_done"] / max(info["drain_seconds"], 1e-6)
        drain = (f"\nAfter the last send, {info['drain_backlog']:,} messages were not answered yet; the worker "
                 f"answered them at **{rate:,.0f} msg/s** with the web server idle "
                 f"({'all in' if info['drained_at'] else 'NOT all in'} {info['drain_seconds']:.1f} s).")
    return "\n".join(lines) + "\n" + drain, sustained


# -- main -----------------------------------------------------------------------------------------


OURS_THROUGH_THE_WEB = ("web", "worker", "scheduler", "postgres", "redis/mq")
OURS_PIPELINE = ("worker", "scheduler", "postgres", "redis/mq")


def floor_table(bare: floor.FloorResult, threads: int, phase1: Phase1 | None,
                backlog: dict | None) -> tuple[str, dict[str, float]]:
    """Phase 4's table and our CPU per message divided by the floor's (its process, here the sender's role, and
    PostgreSQL), through the web (phase 1) and for the pipeline alone (phase 3). The sandbox (WeCom and the model)
    counts on neither side."""
    floor_ms = bare.ms_per_message("sender") + bare.ms_per_message("postgres")
    ours = {}
    if phase1:
        per_msg = {role: phase1.cpu_all.get(role, 0) * phase1.wall_all / max(1, len(phase1.matched.msgs)) * 1000
                   for role in OURS_THROUGH_THE_WEB}
        ours["through the web (phase 1: " + " + ".join(OURS_THROUGH_THE_WEB) + ")"] = sum(per_msg.values())
    if backlog:
        ours["the pipeline alone (phase 3: " + " + ".join(OURS_PIPELINE) + ")"] = sum(
            backlog["ms_per_msg"].get(role, 0) for role in OURS_PIPELINE)
    ratios = {name: value / floor_ms for name, value in ours.items()}
    lines = [
        f"| phase 4: the floor (bench/floor.py: insert + commit, context select, model call, send call, update + "
        f"commit; {threads} threads) | value |",
        "|---|---|",
        f"| messages | {bare.messages:,} in {bare.seconds:.1f} s ({bare.messages / bare.seconds:,.0f} msg/s) |",
        f"| CPU ms per message: the floor's process / postgres / sandbox (not counted) | "
        f"{bare.ms_per_message('sender'):.2f} / {bare.ms_per_message('postgres'):.2f} / "
        f"{bare.ms_per_message('sandbox'):.2f} |",
        *(f"| **ours ÷ floor, {name}** | {value:.1f} ms ÷ {floor_ms:.2f} ms = **{ratios[name]:.1f}×** |"
          for name, value in ours.items()),
    ]
    return "\n".join(lines) + "\n", {name.split(" (")[0]: ratio for name, ratio in ratios.items()}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = benchkit.argument_parser(__doc__)
    parser.add_argument("--rate", type=float, default=100, help="phase 1: messages per second (open loop)")
    parser.add_argument("--duration", type=float, default=20, help="phase 1: seconds (0 skips phase 1)")
    parser.add_argument("--contacts", type=int, default=200, help="phase 1: distinct customers the messages cycle over")
    parser.add_argument("--redelivery", type=float, default=0.3,
                        help="phase 1: share of the messages sent a second time, identically, 0-3 s after the first "
                             "(WeCom re-sends what it thinks was missed)")
    parser.add_argument("--ramp", default="10,20,30,40,50,75,100,150,200,300",
                        help="phase 2: rates of the ramp's steps, msg/s, comma-separated ('' skips phase 2)")
    parser.add_argument("--step-duration", type=float, default=10, help="phase 2: seconds per step")
    parser.add_argument("--latency-bound", type=float, default=1.0,
                        help="phase 2: a step keeps up when its stored -> receipt p95 is at most this many seconds "
                             "and the backlog at its end is at most rate x this")
    parser.add_argument("--max-backlog", type=float, default=5,
                        help="phase 2: stop the ramp once the unanswered backlog exceeds this many seconds of the "
                             "current step's rate")
    parser.add_argument("--backlog", type=int, default=0,
                        help="phase 3: messages stored with the worker paused, then drained (0 skips phase 3)")
    parser.add_argument("--backlog-rate", type=float, default=150, help="phase 3: callbacks per second while storing")
    parser.add_argument("--floor", type=int, default=3000,
                        help="phase 4: messages answered the bare way by bench/floor.py on the same database server "
                             "and sandbox, to divide our CPU per message by (0 skips phase 4)")
    parser.add_argument("--floor-threads", type=int, default=4, help="phase 4: threads of the floor")
    benchkit.add_web_server_options(parser, workers=2)  # --web-server gunicorn|uvicorn, --web-workers, --web-threads
    parser.add_argument("--worker-poll-ms", type=int, default=100,
                        help="dramatiq_worker_timeout of the worker: the longest sleep of an idle consumer between "
                             "polls of the Redis queues (platform/Procfile: WORKER_POLL_MS, 100)")
    parser.add_argument("--sender-threads", type=int, default=128, help="thread pool of the open-loop sender")
    parser.add_argument("--timeout", type=float, default=10, help="client timeout per callback, seconds")
    parser.add_argument("--drain-timeout", type=float, default=180, help="longest wait for the answers of a phase")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=PYTHON_LITERAL",
                        help="experiment: override a Django setting in every child (a generated settings module "
                             "importing --settings), e.g. --setting TENANT_LIMIT_SET_CALLS=True; repeatable")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="experiment: an environment variable for every child, e.g. "
                             "--env DB_POOL_MAX_SIZE=20; repeatable")
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the children (INFO logs every stage)")
    parser.add_argument("--broker-url", default="",
                        help="Dramatiq broker of the children (default: --redis-url); e.g. an amqp:// URL with a "
                             "RabbitMQ vhost of its own (queues there have no namespace)")
    parser.add_argument("--model-latency", type=float, default=0.0,
                        help="seconds the fake model takes to answer in the phases (a hosted model: 1-3 s); CPU per "
                             "message stays comparable, latencies then include it")
    parser.add_argument("--profile", action="store_true",
                        help="sample the web and worker processes with py-spy during phase 1, and the worker "
                             "during phase 3 (only the thread "
                             "holding the GIL, i.e. where Python spends CPU; raw stacks kept with the logs; the "
                             "profiler's CPU shows up as `other`)")
    parser.add_argument("--note", default="", help="a sentence added to the recorded entry")
    benchkit.add_common_options(parser, database="wecomdesk_bench_pipeline", redis_db=8)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration < 0 or args.contacts < 1 or args.web_workers < 1 or args.step_duration <= 0:
        parser.error("rate, contacts, web-workers and step-duration must be positive")
    per_contact = args.rate * min(args.duration, 60) / args.contacts
    if per_contact > MAX_PER_CONTACT_PER_MINUTE:
        parser.error(f"{per_contact:.0f} messages per contact within a minute: WeCom's per-member limit would pace "
                     f"the answers; use more --contacts (at least "
                     f"{math.ceil(args.rate * min(args.duration, 60) / MAX_PER_CONTACT_PER_MINUTE)})")
    if args.profile:
        args.keep_logs = True
    return args


def broker_url(args) -> dict[str, str]:
    return {"the broker": args.broker_url} if args.broker_url else {}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return benchkit.run(lambda children, log_dir: measure(args, argv, children, log_dir), args, name="pipeline",
                        loopback=broker_url(args))


def measure(args, argv: list[str], children: dict[str, Child], log_dir: Path) -> bool:
    port, sandbox_port = free_port(), free_port()
    env = child_env(args, port, sandbox_port)
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    if args.setting:  # a throwaway settings module in the log dir
        lines = [f"from {args.settings} import *  # noqa: F403"]
        for item in args.setting:
            name, _, value = item.partition("=")
            ast.literal_eval(value)  # a literal, nothing else
            lines.append(f"{name} = {value}")
        (log_dir / "bench_pipeline_settings.py").write_text("\n".join(lines) + "\n")
        env["DJANGO_SETTINGS_MODULE"] = "bench_pipeline_settings"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(log_dir), env.get("PYTHONPATH")]))
    t_setup = time.monotonic()
    callback_url = set_up_tenant(args, env, sandbox_port)
    callback_path = urlsplit(callback_url).path
    print(f"set up in {time.monotonic() - t_setup:.1f} s; callback URL {callback_url}", flush=True)

    children["sandbox"] = benchkit.sandbox_child(env, log_dir, port=sandbox_port, callback_url=callback_url,
                                                 secret=APP_SECRET)
    children["web"] = benchkit.web_child(env, log_dir, port=port, workers=args.web_workers, server=args.web_server,
                                         threads=args.web_threads)
    children["worker"] = benchkit.worker_child(env, log_dir, processes=args.worker_processes,
                                               threads=args.worker_threads)
    children["scheduler"] = Child("scheduler", [sys.executable, "manage.py", "scheduler"], env, log_dir)
    # RabbitMQ: no heartbeat to look at; the warm-up below waits for answers, so for the worker too.
    redis_broker = (args.broker_url or args.redis_url).startswith("redis")
    benchkit.wait_for_servers(children, sandbox_port=sandbox_port, web_port=port,
                              redis_url=args.redis_url if redis_broker else None, namespace=NAMESPACE)

    conn = psycopg.connect(args.database_url, autocommit=True)
    try:
        factory = MessageFactory(callback_path, args.seed)
        poster = Poster(port, args.timeout)
        known = warm_up(factory, poster, conn, children)
        if args.model_latency:  # after the warm-up: it only needs the path to work
            benchkit.sandbox_post(sandbox_port, "model/config", {"latency": args.model_latency})
        meter = CpuMeter(children, urlsplit(args.database_url).path.lstrip("/"),
                         count_rabbitmq=args.broker_url.startswith("amqp"))
        background, quiet = benchkit.wait_quiet(meter, args.wait_quiet, children)
        print(f"machine load before phase 1 (servers idle): {background:.2f} cores"
              + ("" if quiet else " -- NOT QUIET, results are pessimistic"), flush=True)

        phase1 = p1_msgs = None
        if args.duration > 0:
            phase1, p1_msgs = run_phase1(args, factory, poster, meter, conn, sandbox_port, children, log_dir)
            known |= {m.tag for m in p1_msgs}
        steps, p2_msgs, info = ([], [], {})
        if args.ramp.strip():
            steps, p2_msgs, info = run_ramp(args, factory, poster, meter, conn, children)
            known |= {m.tag for m in p2_msgs}
        backlog = p3_msgs = None
        if args.backlog > 0:
            backlog, p3_msgs = run_backlog(args, factory, poster, meter, conn, children, log_dir)
            known |= {m.tag for m in p3_msgs}
        time.sleep(2)  # anything sent twice would show up now
        deliveries = fetch_deliveries(sandbox_port)
        bare = None
        if args.floor > 0:  # after the deliveries are read: the floor's own answers are not the desk's
            print(f"phase 4: the floor (bench/floor.py), {args.floor:,} messages ...", flush=True)
            bare = floor.run_floor(database_url=args.database_url, sandbox_base=f"http://127.0.0.1:{sandbox_port}",
                                   meter=meter, messages=args.floor, threads=args.floor_threads,
                                   contacts=max(200, args.floor // 20), secret=APP_SECRET)
        problems: list[str] = []
        text = []
        if phase1:
            phase1.matched = match(p1_msgs, phase1.matched.rows, deliveries, known)
            problems += [f"phase 1: {p}" for p in phase1.matched.problems]
            text.append(phase1_table(phase1))
        sustained = None
        if steps:
            rows = fetch_rows(conn, [m.msg_id for m in p2_msgs])
            matched = match(p2_msgs, rows, deliveries, known)
            problems += [f"phase 2: {p}" for p in matched.problems if "answer no message" not in p
                         or not phase1]
            table, sustained = ramp_table(steps, matched, info, args.latency_bound)
            text.append(f"Phase 2, ramp (open loop, {args.step_duration:g} s per step, {info['contacts']} fresh "
                        f"contacts, no pause between steps; sender lateness max {ms(info['lateness'])}):\n\n"
                        + table)
            text.append(f"Sustained peak (highest step before the first whose stored → receipt p95 exceeds "
                        f"{args.latency_bound:g} s or whose backlog at its end exceeds "
                        f"{args.latency_bound:g} s of its rate): "
                        f"**{f'{sustained:g} msg/s' if sustained else 'below the first step'}**.")
        ratios = {}
        if bare:
            table, ratios = floor_table(bare, args.floor_threads, phase1, backlog)
            text_floor = table
        if backlog:
            p3_matched = match(p3_msgs, fetch_rows(conn, [m.msg_id for m in p3_msgs]), deliveries, known)
            problems += [f"phase 3: {p}" for p in p3_matched.problems if "answer no message" not in p
                         or not (phase1 or steps)]
            text.append(backlog_table(backlog))
        if bare:
            text.append(text_floor)
        redundant = [d for d in deliveries if not d["delivered"]]
        checks = [f"deliveries recorded by the sandbox: {len(deliveries):,} (not delivered: {len(redundant)})",
                  f"messages sent (warm-up + phases): {len(known):,}"]
        verdict = "every message got exactly one delivered answer ✓" if not problems else \
            "CORRECTNESS PROBLEMS: " + "; ".join(problems) + " ✗"
    finally:
        conn.close()

    command, key = benchkit.command_line(argv, script="pipeline.py", unkeyed=("--wait-quiet", "--note"),
                                         unkeyed_flags=("--keep-logs", "--profile"))
    targets = []
    if phase1:
        p95 = percentile(phase1.matched.e2e(), 95)
        slow_acks = sum(1 for x in phase1.matched.msgs + phase1.redelivered if x.acked - x.scheduled > 1)
        if args.rate >= 100:
            met = p95 < 0.3 and not slow_acks
            targets.append(f"p95 stored → receipt at {args.rate:g} msg/s with {args.redelivery:.0%} redelivered: "
                           f"{ms(p95)}, acks over 1 s: {slow_acks} ({'met' if met else '**missed**'}; target "
                           "< 300 ms at 100 msg/s with 30% redelivery, no ack over 1 s)")
    if steps:
        targets.append(f"sustained peak: {f'{sustained:g}' if sustained else '<' + f'{steps[0].rate:g}'} msg/s "
                       f"({'met' if sustained and sustained >= 300 else '**missed**'}; target >= 300 msg/s)")
    if backlog:
        targets.append(f"pipeline peak (phase 3, stored → receipt, web idle): {backlog['rate']:.0f} msg/s "
                       f"({'met' if backlog['rate'] >= 300 else '**missed**'}; target >= 300 msg/s)")
    for name, ratio in ratios.items():
        targets.append(f"our CPU per message ÷ the floor's, {name}: {ratio:.1f}× "
                       f"({'met' if ratio <= 2 else '**missed**'}; target <= 2×)")
    others = ([("phase 1", phase1.cpu_all.get("other", 0))] if phase1 else []) + [
        (f"ramp step {k + 1}", step.cpu.get("other", 0)) for k, step in enumerate(steps) if step.cpu]
    noisy = [f"{name} {other:.2f}" for name, other in others if other > 0.3]
    if noisy:
        checks.append("**the machine was shared**: cores used by processes outside the benchmark (`other`): "
                      + ", ".join(noisy) + "; those numbers are pessimistic")
    experiments = "".join(f", `{item}`" for item in args.setting + args.env)
    broker = (f"broker `{urlsplit(args.broker_url).scheme}` ({urlsplit(args.broker_url).path or '/'})"
              if args.broker_url else "Redis broker")
    web = benchkit.web_server_line(server=args.web_server, workers=args.web_workers, threads=args.web_threads)
    settings_line = (f"Code: {benchkit.git_state()}. {web} (access log off), "
                     f"rundramatiq `--processes {args.worker_processes} --threads {args.worker_threads}` "
                     f"(`dramatiq_worker_timeout={args.worker_poll_ms}`), `manage.py scheduler`, the WeCom sandbox "
                     f"(fake model, zero latency) as its own process; `{args.settings}` with DEBUG=False, "
                     f"LOG_LEVEL={args.log_level}{experiments}, {broker}; the sender, PostgreSQL and Redis share the "
                     f"same cores. Busy cores before phase 1 with the servers idle: {background:.2f}"
                     + ("" if quiet else " (**the machine was not quiet: other processes competed**)"))
    entry = (f"{entry_title(command)}\n\n"
             f"Machine: {benchkit.machine_line()}. {settings_line}."
             + (f" {args.note}" if args.note else "") + "\n\n"
             + "\n\n".join(part.rstrip("\n") for part in text) + "\n\n"
             + "".join(f"- {t}\n" for t in targets)
             + "".join(f"- {c}\n" for c in checks) + f"- {verdict}\n")
    print()
    print(entry)
    if args.record:
        benchkit.record(key, entry, script="pipeline.py", title=SECTION_TITLE)
    return not problems


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
