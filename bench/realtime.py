"""Benchmark of the agent screens' realtime path: a customer message stored -> the event on the owner's socket.

    .venv/bin/python bench/realtime.py [--sockets 200] [--messages 300] [--rate 20] [--paths e2e,direct]
                                       [--wait-quiet SECONDS] [--record]

Everything runs on this machine, over loopback, against the benchmark's OWN database (`wecomdesk_bench_rt`,
created if missing; its `bench` tenant is dropped and recreated every run), its own Redis logical database (7),
Dramatiq namespace (`dramatiq-bench-rt`) and channel-layer prefix: it never touches the developer's or the tests'
data. It sets up a self-built app (Tencent's sample credentials), `--sockets` agents each owning (claimed) one
handed-off conversation and a session for each agent, then starts ONE uvicorn web process, a real
`manage.py rundramatiq` worker (as platform/Procfile: `dramatiq_worker_timeout=100`, see --worker-timeout-ms) and
the WeCom sandbox (it receives the 200 handoff messages of the set-up), and
opens one WebSocket per agent at `/t/bench/ws/agent/` (session cookie, as a browser does), each watching its own
conversation and heartbeating every 20 s like the agent screen. Then:

e2e     encrypted WeCom callbacks from the customers of random conversations, at a fixed rate (open loop), through
        the real callback endpoint: stored (web) -> process_inbound (worker) -> the conversation is human-owned ->
        record_message -> on commit, an event to the conversation's group -> the owner's socket.
direct  the same customer messages written by a separate process with `record_message` in a transaction (the
        conversation locked, as the pipeline does): commit -> socket, the fan-out alone.

Clocks: all timestamps are time.time() of processes on this host. e2e measures from InboundMessage.received_at
(the web process stores the customer message; the moment the platform owns it and acknowledges WeCom) and also
from Message.created_at (the worker's transcript row: the fan-out part, including the rest of the worker's
transaction); direct measures from the writer's commit (an on_commit hook registered before record_message's
publish). Every message event must reach its owner's socket exactly once and no other socket, else exit 1.
`--record` writes the results into docs/BENCHMARKS.md (its own "## Realtime" section only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import benchkit  # bench/ is on sys.path when run as a script
import psycopg
from benchkit import (
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
    ms,
    percentile,
    run_manage,
    wait_until,
)
from websockets.asyncio.client import connect as ws_connect

APP_SECRET = "bench-rt-secret"
NAMESPACE = "dramatiq-bench-rt"
SECTION_TITLE = "## Realtime: a customer message to the agent's socket"
TARGET_P95 = 0.300  # the target, seconds
HEARTBEAT_SECONDS = 20  # tickets.presence.HEARTBEAT_SECONDS: what the agent screen sends
PER_CONTACT_PER_MINUTE = 15  # below the desk's default customer limit (20/60 s): no rate-limit notices
TEXT = "还在吗？我的订单到哪了？"
CONTENDED = 0.3  # cores used by processes outside the benchmark during a phase above which it is measured again

# Run inside `manage.py shell -c` (the tenant's schema): agents, their claimed conversations, their sessions.
SETUP_SCRIPT = """
import json, os, time
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django_tenants.utils import schema_context
from conversations.models import Contact, Conversation, DeskSettings, WeComApp
from conversations.services.handoff import hand_off_to_human
from conversations.vocabulary import HandoffReason
from tickets.models import AgentProfile
from tickets.services import claim_conversation

spec = json.loads(os.environ["BENCH_SETUP"])
started = time.monotonic()
agents = []
with schema_context(spec["tenant"]):
    app = WeComApp.objects.get()
    desk = DeskSettings.current()
    for i in range(spec["n"]):
        # No password: hashing 200 of them would take a minute, and the session is made directly below.
        user = get_user_model().objects.create_user(username=f"rt-agent-{i:03d}", password=None, is_staff=True)
        profile = AgentProfile.objects.create(user=user, role=AgentProfile.Role.AGENT, max_concurrent=5,
                                              display_name=f"Agent {i:03d}")
        contact = Contact.objects.create(app=app, external_id=f"rt-member-{i:03d}")
        with transaction.atomic():  # as the pipeline hands off: the conversation locked, a ticket, a message
            conversation = Conversation.objects.create(contact=contact)
            conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
            hand_off_to_human(conversation=conversation, reason=HandoffReason.CUSTOMER_ASKED, desk=desk)
        claim_conversation(conversation_id=conversation.pk, profile=profile)
        client = Client()
        client.force_login(user)  # a session row in the tenant's own session table, as the agent login makes
        agents.append({"index": i, "user_id": user.pk, "username": user.username, "member": contact.external_id,
                       "conversation": conversation.pk,
                       "cookie": client.cookies[settings.SESSION_COOKIE_NAME].value})
    states = sorted(set(Conversation.objects.values_list("state", flat=True)))
with open(spec["out"], "w") as f:
    json.dump({"agents": agents, "cookie_name": settings.SESSION_COOKIE_NAME, "states": states,
               "seconds": time.monotonic() - started}, f)
print("ok")
"""

# Run inside `manage.py shell -c` as its own process: customer messages written straight through record_message.
INJECT_SCRIPT = """
import json, os, time
from django.db import transaction
from django_tenants.utils import schema_context
from conversations.models import Conversation
from conversations.services.conversations import record_message

spec = json.loads(open(os.environ["BENCH_INJECT"]).read())


def write(conversation_id, text):
    stamps = {}
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        # Registered before record_message's publish, so it runs first, right after COMMIT returned.
        transaction.on_commit(lambda: stamps.__setitem__("committed", time.time()))
        message = record_message(conversation=conversation, author="customer", text=text)
    stamps["published"] = time.time()  # record_message's on_commit group_send has returned
    return message, stamps


results = []
with schema_context(spec["tenant"]):
    for conversation_id, token in spec["warm"]:
        write(conversation_id, f"{token} {spec['text']}")
        time.sleep(0.05)
    start_wall = time.time() + 0.5
    with open(spec["ready"], "w") as f:
        f.write(str(start_wall))
    start = time.monotonic() + (start_wall - time.time())
    for offset, conversation_id, token in spec["plan"]:
        scheduled = start + offset
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        late = time.monotonic() - scheduled
        message, stamps = write(conversation_id, f"{token} {spec['text']}")
        results.append({"token": token, "conversation": conversation_id, "late": late, "message": message.pk,
                        "created": message.created_at.timestamp(), **stamps})
with open(spec["out"], "w") as f:
    json.dump(results, f)
open(spec["done"], "w").close()
deadline = time.monotonic() + 60  # stay alive until the benchmark has read this process's CPU time
while not os.path.exists(spec["release"]) and time.monotonic() < deadline:
    time.sleep(0.02)
print("ok")
"""


class CpuMeter(benchkit.CpuMeter):
    """CPU used per role (bench/benchkit.py): clients (this process: the sockets and the callback sender), web,
    worker, writer (the direct path's process), sandbox, postgres, redis."""

    ROLES = ("clients", "web", "worker", "writer", "sandbox", "postgres", "redis", "other", "idle")


# -- the sockets ----------------------------------------------------------------------------------


@dataclass
class Agent:
    index: int
    user_id: int
    username: str
    member: str
    conversation: int
    cookie: str
    socket: str = ""
    connect_seconds: float = 0.0


@dataclass
class Received:
    at: float  # time.time() when the frame was read
    agent: int  # index of the socket
    event: dict


@dataclass
class Sockets:
    agents: list[Agent]
    port: int
    cookie_name: str
    connections: list = field(default_factory=list)
    events: list[Received] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # the client loop's own lateness (10 ms ticks)
    waiters: dict[str, asyncio.Future] = field(default_factory=dict)
    history: dict[int, deque] = field(default_factory=lambda: defaultdict(deque))  # see plan_messages
    tasks: list[asyncio.Task] = field(default_factory=list)


async def open_socket(sockets: Sockets, agent: Agent, limit: asyncio.Semaphore, timeout: float):
    url = f"ws://127.0.0.1:{sockets.port}/t/{TENANT}/ws/agent/"
    # The client sends its own Host header: a second one makes daphne answer 400. Origin as a browser sends it.
    async with limit:
        started = time.monotonic()
        ws = await ws_connect(url, additional_headers=[("Cookie", f"{sockets.cookie_name}={agent.cookie}")],
                              origin=f"http://127.0.0.1:{sockets.port}", open_timeout=timeout,
                              ping_interval=None,  # browsers do not ping; the server's own pings still run
                              max_queue=None)
        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if hello.get("type") != "hello":
            raise BenchError(f"agent {agent.index}: expected hello, got {hello}")
        agent.socket = hello["socket"]
        await ws.send(json.dumps({"type": "watch", "conversation": agent.conversation}))
        watching = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if watching != {"type": "watching", "conversation": agent.conversation}:
            raise BenchError(f"agent {agent.index}: watch refused: {watching}")
        agent.connect_seconds = time.monotonic() - started
    return ws


async def read_socket(sockets: Sockets, agent: Agent, ws) -> None:
    try:
        async for raw in ws:
            at = time.time()
            event = json.loads(raw)
            sockets.events.append(Received(at, agent.index, event))
            if event.get("type") == "message":
                token = str(event.get("message", {}).get("text", "")).split(" ", 1)[0]
                waiter = sockets.waiters.get(token)
                if waiter is not None and not waiter.done():
                    waiter.set_result(at)
    except Exception as exc:  # noqa: BLE001 - recorded and reported: a socket that died is a failure
        sockets.closed.append(f"agent {agent.index}: {type(exc).__name__}: {exc}")
        return
    sockets.closed.append(f"agent {agent.index}: closed by the server ({ws.close_code} {ws.close_reason})")


async def heartbeat(sockets: Sockets, agent: Agent, ws, period: float, offset: float) -> None:
    """What the agent screen does: {"type": "heartbeat"} every HEARTBEAT_SECONDS, staggered across sockets."""
    await asyncio.sleep(offset)
    while True:
        try:
            await ws.send(json.dumps({"type": "heartbeat"}))
        except Exception:  # noqa: BLE001 - read_socket reports the closed socket
            return
        await asyncio.sleep(period)


async def loop_lag(sockets: Sockets) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        sockets.lag.append(time.monotonic() - before - 0.01)


# -- the e2e path: WeCom callbacks ----------------------------------------------------------------


@dataclass
class Sent:
    token: str
    agent: int
    scheduled_wall: float  # time.time() the callback was due
    late: float  # how late the sender started it
    acked: float | None = None  # seconds from scheduled to the HTTP answer
    status: int | None = None
    error: str | None = None


async def post_callback(port: int, path: str, body: bytes, timeout: float) -> int:
    """One POST on a new connection (as WeCom does), `Connection: close`, status code of the answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)  # the server closes after the answer
        return int(data.split(b" ", 2)[1])
    finally:
        writer.close()


def plan_messages(agents: list[Agent], count: int, rate: float, rng: random.Random, prefix: str,
                  history: dict[int, deque]):
    """(offset seconds, agent index, token): random conversations, each customer kept below the desk's rate limit
    over the whole run (`history`: wall times of the messages already planned, per agent)."""
    base = time.time() + 1.0
    plan = []
    for k in range(count):
        at = k / rate
        while True:
            i = rng.randrange(len(agents))
            window = history[i]
            while window and base + at - window[0] >= 60:
                window.popleft()
            if len(window) < PER_CONTACT_PER_MINUTE:
                window.append(base + at)
                break
        plan.append((at, i, f"rt-{prefix}-{k:05d}"))
    return plan


async def await_tokens(sockets: Sockets, tokens: list[str], timeout: float) -> None:
    pending = [sockets.waiters[t] for t in tokens if not sockets.waiters[t].done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


async def run_e2e(sockets: Sockets, factory: TextCallbacks, args, rng: random.Random, warm: int,
                  meter: CpuMeter, attempt: int) -> dict:
    agents = sockets.agents
    # Warm-up (not measured): the first callbacks import the view, open pools and wake the worker.
    warm_plan = plan_messages(agents, warm, 10, rng, f"warm-e2e-{attempt}", sockets.history)
    for _, i, token in warm_plan:
        sockets.waiters[token] = asyncio.get_running_loop().create_future()
        _, prepared = factory.new(member=agents[i].member, text=f"{token} {TEXT}")
        await post_callback(sockets.port, prepared.url, prepared.body, args.timeout)
        await asyncio.sleep(0.1)
    await await_tokens(sockets, [t for _, _, t in warm_plan], 20)
    await asyncio.sleep(1.0)

    plan = plan_messages(agents, args.messages, args.rate, rng, f"e2e-{attempt}", sockets.history)
    prepared = [factory.new(member=agents[i].member, text=f"{token} {TEXT}")[1]  # before the clock
                for _, i, token in plan]
    for _, _, token in plan:
        sockets.waiters[token] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    lag_from = len(sockets.lag)
    before = meter.snapshot()
    start = loop.time() + 0.2
    start_wall = time.time() + 0.2
    sent: list[Sent] = []

    async def one(offset: float, i: int, token: str, request) -> None:
        record = Sent(token, i, start_wall + offset, loop.time() - (start + offset))
        sent.append(record)
        try:
            record.status = await post_callback(sockets.port, request.url, request.body, args.timeout)
        except (TimeoutError, OSError, ValueError, IndexError) as exc:
            record.error = type(exc).__name__
        record.acked = loop.time() - (start + offset)

    tasks = []
    for (offset, i, token), request in zip(plan, prepared, strict=True):
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(offset, i, token, request)))
    await asyncio.gather(*tasks)
    await await_tokens(sockets, [t for _, _, t in plan], args.event_timeout)
    after = meter.snapshot()
    return {"sent": sent, "cpu": meter.usage(before, after), "wall": after.at - before.at,
            "lag": max(sockets.lag[lag_from:], default=0.0)}


def e2e_rows(database_url: str) -> dict[str, dict]:
    """Per token: the inbound row's received/processed times and the transcript row's created time."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(f"""
            SELECT split_part(m.text, ' ', 1), extract(epoch FROM i.received_at), extract(epoch FROM m.created_at),
                   extract(epoch FROM i.processed_at), i.status, m.conversation_id,
                   (SELECT t.detail->>'outcome' FROM {TRACE} t
                     WHERE t.inbound_id = i.id AND t.stage = 'processed' LIMIT 1)
            FROM "{TENANT}".conversations_message m
            JOIN {INBOUND} i ON i.id = m.inbound_id
            WHERE m.author = 'customer' AND m.text LIKE 'rt-e2e-%'""").fetchall()  # noqa: S608
        pending = conn.execute(f"""SELECT count(*) FROM {INBOUND}
                                   WHERE status = 'pending'""").fetchone()[0]  # noqa: S608
    out = {r[0]: {"received": float(r[1]), "created": float(r[2]), "processed": float(r[3]) if r[3] else None,
                  "status": r[4], "conversation": r[5], "outcome": r[6]} for r in rows}
    out["__pending__"] = {"count": pending}
    return out


# -- the direct path: record_message from another process -----------------------------------------


async def run_direct(sockets: Sockets, args, env: dict[str, str], rng: random.Random, log_dir: Path,
                     children: dict[str, Child], meter: CpuMeter, attempt: int) -> dict:
    agents = sockets.agents
    plan = plan_messages(agents, args.messages, args.rate, rng, f"direct-{attempt}", sockets.history)
    warm = plan_messages(agents, 5, 10, rng, f"warm-direct-{attempt}", sockets.history)
    for _, _, token in plan + warm:
        sockets.waiters[token] = asyncio.get_running_loop().create_future()
    name = f"inject{attempt}"
    spec_path, out_path, ready_path = log_dir / f"{name}.json", log_dir / f"{name}-out.json", log_dir / f"{name}-ready"
    done_path, release_path = log_dir / f"{name}-done", log_dir / f"{name}-release"
    spec_path.write_text(json.dumps({
        "tenant": TENANT, "text": TEXT, "ready": str(ready_path), "out": str(out_path), "done": str(done_path),
        "release": str(release_path),
        "warm": [[agents[i].conversation, token] for _, i, token in warm],
        "plan": [[offset, agents[i].conversation, token] for offset, i, token in plan]}, ensure_ascii=False))
    writer = Child(f"writer{attempt}", [sys.executable, "manage.py", "shell", "-c", INJECT_SCRIPT], {
        **env, "BENCH_INJECT": str(spec_path)}, log_dir)
    children["writer"] = writer
    deadline = time.monotonic() + 120
    while not ready_path.exists():
        if not writer.alive() or time.monotonic() > deadline:
            raise BenchError(f"the direct writer did not start:\n{writer.tail()}")
        await asyncio.sleep(0.02)
    start_wall = float(ready_path.read_text())
    await asyncio.sleep(max(0.0, start_wall - time.time()))
    lag_from = len(sockets.lag)
    before = meter.snapshot()
    limit = time.monotonic() + len(plan) / args.rate + 120
    while writer.alive() and not done_path.exists() and time.monotonic() < limit:
        await asyncio.sleep(0.02)
    if not done_path.exists():
        raise BenchError(f"the direct writer failed or did not finish in time:\n{writer.tail()}")
    await await_tokens(sockets, [t for _, _, t in plan], args.event_timeout)
    after = meter.snapshot()  # the writer is still alive: its CPU time is still readable
    release_path.touch()
    for _ in range(200):
        if not writer.alive():
            break
        await asyncio.sleep(0.05)
    if writer.proc.returncode != 0:
        raise BenchError(f"the direct writer failed:\n{writer.tail()}")
    cpu = meter.usage(before, after)
    wall = after.at - before.at
    lag = max(sockets.lag[lag_from:], default=0.0)
    del children["writer"]
    writer.stop()
    return {"written": json.loads(out_path.read_text()), "cpu": cpu, "wall": wall, "lag": lag}


# -- checks ---------------------------------------------------------------------------------------


def routing(sockets: Sockets, tokens: dict[str, int]) -> dict:
    """Where each message event landed: exactly once on the owner's socket, never on another one."""
    arrivals: dict[str, list[Received]] = defaultdict(list)
    foreign_conversation = 0  # any conversation-scoped event on a socket that does not own it
    kinds: Counter = Counter()
    owner_of = {a.conversation: a.index for a in sockets.agents}
    for r in sockets.events:
        kinds[r.event.get("type")] += 1
        conversation = r.event.get("conversation")
        if conversation is not None and r.event.get("type") != "queue" and owner_of.get(conversation) != r.agent:
            foreign_conversation += 1
        if r.event.get("type") == "message":
            token = str(r.event.get("message", {}).get("text", "")).split(" ", 1)[0]
            if token in tokens:
                arrivals[token].append(r)
    missing = [t for t in tokens if not arrivals.get(t)]
    duplicated = [t for t, rs in arrivals.items() if len(rs) > 1]
    wrong = [t for t, rs in arrivals.items() if any(r.agent != tokens[t] for r in rs)]
    return {"arrivals": arrivals, "missing": missing, "duplicated": duplicated, "wrong": wrong,
            "foreign": foreign_conversation, "kinds": kinds}


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = benchkit.argument_parser(__doc__)
    parser.add_argument("--sockets", type=int, default=200, help="agents, each with one socket and one conversation")
    parser.add_argument("--messages", type=int, default=300, help="customer messages per path")
    parser.add_argument("--rate", type=float, default=20, help="customer messages per second (open loop)")
    parser.add_argument("--paths", default="e2e,direct", help="which paths to run: e2e, direct or both")
    parser.add_argument("--worker-timeout-ms", type=int, default=100,
                        help="dramatiq_worker_timeout of the worker: the longest sleep of an idle consumer between "
                             "polls of its Redis queue (platform/Procfile's WORKER_POLL_MS default is 100; "
                             "1000 is Dramatiq's own default)")
    parser.add_argument("--connect-concurrency", type=int, default=20, help="sockets opened at the same time")
    parser.add_argument("--timeout", type=float, default=10, help="client timeout per request/handshake, seconds")
    parser.add_argument("--event-timeout", type=float, default=20,
                        help="how long after the last message the run waits for missing events")
    parser.add_argument("--attempts", type=int, default=3,
                        help=f"measure a path again (after waiting for a quiet machine) when processes outside the "
                             f"benchmark used more than {CONTENDED} cores during it; the least contended is reported")
    benchkit.add_common_options(parser, database="wecomdesk_bench_rt", redis_db=7)
    args = parser.parse_args(argv)
    args.path_list = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not args.path_list or set(args.path_list) - {"e2e", "direct"}:
        parser.error("--paths takes e2e, direct or e2e,direct")
    if args.sockets < 1 or args.messages < 1 or args.rate <= 0:
        parser.error("sockets, messages and rate must be positive")
    if args.rate / args.sockets * 60 > PER_CONTACT_PER_MINUTE:
        parser.error(f"--rate too high for --sockets: each customer must stay under {PER_CONTACT_PER_MINUTE}/min "
                     "(the desk's customer rate limit would answer with notices)")
    return args


def child_env(args, port: int, sandbox_port: int) -> dict[str, str]:
    return benchkit.child_env(settings=args.settings, database_url=args.database_url, redis_url=args.redis_url,
                              namespace=NAMESPACE, key_prefix="wecomdesk-bench-rt", port=port,
                              sandbox_port=sandbox_port, worker_poll_ms=args.worker_timeout_ms)


def outbound_unsettled(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(f"""SELECT count(*) FROM {OUTBOUND}
                                WHERE status NOT IN ('sent', 'dead', 'cancelled')""").fetchone()[0]  # noqa: S608


async def measure(args, agents: list[Agent], cookie_name: str, port: int, callback_path: str, env, log_dir,
                  children: dict[str, Child], meter: CpuMeter) -> dict:
    sockets = Sockets(agents, port, cookie_name)
    rng = random.Random(args.seed)  # noqa: S311 - not a secret
    results: dict = {"paths": {}}
    sockets.tasks.append(asyncio.create_task(loop_lag(sockets)))
    try:
        # Connect every agent (bounded concurrency), each watching its own conversation.
        limit = asyncio.Semaphore(args.connect_concurrency)
        t0 = time.monotonic()
        before = meter.snapshot()
        sockets.connections = await asyncio.gather(*(open_socket(sockets, a, limit, args.timeout) for a in agents))
        results["connect"] = {"seconds": time.monotonic() - t0, "each": [a.connect_seconds for a in agents],
                              "cpu": meter.usage(before, meter.snapshot())}
        print(f"{len(agents)} sockets connected and watching in {results['connect']['seconds']:.1f} s", flush=True)
        for agent, ws in zip(agents, sockets.connections, strict=True):
            sockets.tasks.append(asyncio.create_task(read_socket(sockets, agent, ws)))
            offset = HEARTBEAT_SECONDS * agent.index / len(agents)
            sockets.tasks.append(asyncio.create_task(heartbeat(sockets, agent, ws, HEARTBEAT_SECONDS, offset)))
        await asyncio.sleep(2)  # heartbeats start, the server settles

        factory = TextCallbacks(callback_path, args.seed)
        results["attempts"] = {}
        for name in args.path_list:
            attempts = results["attempts"][name] = []
            for attempt in range(1, args.attempts + 1):
                # The machine with everything connected and idle (heartbeats only); wait for a quiet moment.
                background, quiet = await asyncio.get_running_loop().run_in_executor(
                    None, benchkit.wait_quiet, meter, args.wait_quiet, children)
                print(f"machine load before {name} (sockets connected, no messages): {background:.2f} cores"
                      + ("" if quiet else " -- NOT QUIET"), flush=True)
                print(f"{name} attempt {attempt}: {args.messages} customer messages at {args.rate:g}/s ...",
                      flush=True)
                if name == "e2e":
                    phase = await run_e2e(sockets, factory, args, rng, warm=10, meter=meter, attempt=attempt)
                else:
                    phase = await run_direct(sockets, args, env, rng, log_dir, children, meter, attempt)
                phase.update(attempt=attempt, background=background, quiet=quiet)
                attempts.append(phase)
                await asyncio.sleep(2)  # the suggestion jobs of the last messages finish
                print(f"{name} attempt {attempt}: processes outside the benchmark used {phase['cpu']['other']:.2f} "
                      "cores", flush=True)
                if phase["cpu"]["other"] <= CONTENDED:
                    break
            results["paths"][name] = min(attempts, key=lambda p: p["cpu"]["other"])
        results["sockets"] = sockets
        results["closed_during_run"] = list(sockets.closed)
    finally:
        for task in sockets.tasks:
            task.cancel()
        await asyncio.gather(*sockets.tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets.connections), return_exceptions=True)
    return results


def attempts_cell(results: dict, name: str) -> str:
    shown = results["paths"][name]["attempt"]
    return f"{shown} of {len(results['attempts'][name])} (" + ", ".join(
        f"{'**' if a['attempt'] == shown else ''}{a['cpu']['other']:.2f}{'**' if a['attempt'] == shown else ''}"
        for a in results["attempts"][name]) + ")"


def contention(results: dict) -> str:
    """Say it when processes that are not part of the benchmark took CPU during a measured phase."""
    busy = {name: phase["cpu"].get("other", 0) for name, phase in results["paths"].items()}
    loud = {name: v for name, v in busy.items() if v > 0.25}
    if not loud:
        return ""
    return ("\n**CPU contention:** processes outside the benchmark used "
            + ", ".join(f"{v:.2f} cores during {name}" for name, v in loud.items())
            + " (column `other`) of the machine's 2; these numbers are pessimistic.\n")


def report(args, argv, results: dict, agents: list[Agent], database_url: str) -> tuple[str, bool]:
    sockets: Sockets = results["sockets"]
    owner = {a.conversation: a.index for a in agents}
    ok = True
    mark = {True: "✓", False: "✗"}
    columns: list[tuple[str, dict[str, str]]] = []
    checks: list[str] = []
    closed = results["closed_during_run"]
    checks.append(f"sockets that died during the run: {len(closed)} {mark[not closed]}"
                  + (f" ({'; '.join(closed[:3])})" if closed else ""))
    ok &= not closed

    if "e2e" in results["paths"]:
        phase = results["paths"]["e2e"]
        sent: list[Sent] = phase["sent"]  # the reported attempt (the least contended)
        mine = {s.token for s in sent}
        all_sent = [s for attempt in results["attempts"]["e2e"] for s in attempt["sent"]]  # checks: every attempt
        tokens = {s.token: s.agent for s in all_sent}
        route = routing(sockets, tokens)
        rows = e2e_rows(database_url)
        pending = rows.pop("__pending__")["count"]
        got = {t: rs[0].at for t, rs in route["arrivals"].items()}
        from_received = [got[t] - rows[t]["received"] for t in mine if t in got and t in rows]
        from_created = [got[t] - rows[t]["created"] for t in mine if t in got and t in rows]
        received_to_created = [rows[t]["created"] - rows[t]["received"] for t in mine if t in rows]
        from_scheduled = [got[s.token] - s.scheduled_wall for s in sent if s.token in got]
        acks = [s.acked for s in sent if s.acked is not None]
        statuses = Counter(str(s.status or s.error) for s in all_sent)
        outcomes = Counter(str(rows[t]["outcome"]) for t in tokens if t in rows)
        wrong_conversation = sum(1 for t in tokens if t in rows and owner.get(rows[t]["conversation"]) != tokens[t])
        p95 = percentile(sorted(from_received), 95)
        cpu = phase["cpu"]
        columns.append(("e2e: WeCom callback → worker → socket", {
            "load": f"{len(sent):,} callbacks, {args.rate:g}/s open loop over {len(agents)} conversations",
            "attempt shown (processes outside the benchmark, cores, per attempt)": attempts_cell(results, "e2e"),
            "**stored → socket** p50 / p95 / p99 / max": f"**{dist(from_received)}**",
            "stored at": "InboundMessage.received_at (web process, in the callback's transaction)",
            "target p95 < 300 ms": f"{mark[p95 < TARGET_P95]} ({ms(p95)})",
            "stored → transcript row (queue + worker)": dist(received_to_created),
            "transcript row → socket (worker's txn + commit + fan-out)": dist(from_created),
            "callback due → socket (what the customer waits)": dist(from_scheduled),
            "callback due → HTTP 200": dist(acks),
            "status / outcomes": ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items())) + "; "
                                 + ", ".join(f"{k}: {v:,}" for k, v in sorted(outcomes.items())),
            "sender / client loop lateness (max)": f"{ms(max((s.late for s in sent), default=0))} / {ms(phase['lag'])}",
            "CPU, cores (" + " / ".join(CpuMeter.ROLES) + ")": CpuMeter.cells(cpu),
            "CPU ms per message (web / worker / postgres / redis)": " / ".join(
                f"{cpu.get(k, 0) * phase['wall'] / max(1, len(sent)) * 1000:.1f}"
                for k in ("web", "worker", "postgres", "redis")),
        }))
        good = (not route["missing"] and not route["duplicated"] and not route["wrong"] and
                statuses == Counter({"200": len(all_sent)}) and len(rows) >= len(tokens) and pending == 0 and
                outcomes == Counter({"routed_to_human": len(tokens)}) and wrong_conversation == 0)
        ok &= good
        checks.append(
            f"e2e: {len(tokens):,} callbacks answered 200: {statuses.get('200', 0):,} "
            f"{mark[statuses.get('200', 0) == len(tokens)]}; stored and routed to the human: "
            f"{outcomes.get('routed_to_human', 0):,} {mark[outcomes.get('routed_to_human', 0) == len(tokens)]}; "
            f"in the owner's conversation: {len(tokens) - wrong_conversation:,} {mark[wrong_conversation == 0]}; "
            f"left pending: {pending} {mark[pending == 0]}")
        checks.append(
            f"e2e: message events on the owner's socket: {len(route['arrivals']):,} of {len(tokens):,} "
            f"{mark[not route['missing']]}; duplicated: {len(route['duplicated'])} {mark[not route['duplicated']]}; "
            f"on another agent's socket: {len(route['wrong'])} {mark[not route['wrong']]}")
        results["e2e_p95"] = p95

    if "direct" in results["paths"]:
        phase = results["paths"]["direct"]
        written = phase["written"]  # the reported attempt (the least contended)
        all_written = [w for attempt in results["attempts"]["direct"] for w in attempt["written"]]
        tokens = {w["token"]: owner[w["conversation"]] for w in all_written}
        route = routing(sockets, tokens)
        got = {t: rs[0].at for t, rs in route["arrivals"].items()}
        from_commit = [got[w["token"]] - w["committed"] for w in written if w["token"] in got]
        from_created = [got[w["token"]] - w["created"] for w in written if w["token"] in got]
        publish = [w["published"] - w["committed"] for w in written]
        p95 = percentile(sorted(from_commit), 95)
        cpu = phase["cpu"]
        columns.append(("direct: record_message commit → socket", {
            "load": f"{len(written):,} commits, {args.rate:g}/s open loop over {len(agents)} conversations",
            "attempt shown (processes outside the benchmark, cores, per attempt)": attempts_cell(results, "direct"),
            "**stored → socket** p50 / p95 / p99 / max": f"**{dist(from_commit)}**",
            "stored at": "the writer's COMMIT (on_commit hook before the publish)",
            "target p95 < 300 ms": f"{mark[p95 < TARGET_P95]} ({ms(p95)})",
            "transcript row → socket (worker's txn + commit + fan-out)": dist(from_created) + " (writer's txn)",
            "writer: commit → group_send returned": dist(publish),
            "sender / client loop lateness (max)":
                f"{ms(max((w['late'] for w in written), default=0))} / {ms(phase['lag'])}",
            "CPU, cores (" + " / ".join(CpuMeter.ROLES) + ")": CpuMeter.cells(cpu),
            "CPU ms per message (web / worker / postgres / redis)": " / ".join(
                f"{cpu.get(k, 0) * phase['wall'] / max(1, len(written)) * 1000:.1f}"
                for k in ("web", "worker", "postgres", "redis")),
        }))
        good = (not route["missing"] and not route["duplicated"] and not route["wrong"]
                and len(all_written) == args.messages * len(results["attempts"]["direct"]))
        ok &= good
        checks.append(
            f"direct: message events on the owner's socket: {len(route['arrivals']):,} of {len(tokens):,} "
            f"{mark[not route['missing']]}; duplicated: {len(route['duplicated'])} {mark[not route['duplicated']]}; "
            f"on another agent's socket: {len(route['wrong'])} {mark[not route['wrong']]}")
        results["direct_p95"] = p95

    route_all = routing(sockets, {})
    checks.append(f"conversation events (message, suggestion, state, ...) on a socket that does not own the "
                  f"conversation: {route_all['foreign']} {mark[route_all['foreign'] == 0]}")
    ok &= route_all["foreign"] == 0
    checks.append("events received, by type: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(
        route_all["kinds"].items(), key=lambda kv: str(kv[0]))))

    labels: list[str] = []
    for _, rows_ in columns:
        labels += [k for k in rows_ if k not in labels]
    table = "| | " + " | ".join(name for name, _ in columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    table += "".join(f"| {label} | " + " | ".join(c.get(label, "") for _, c in columns) + " |\n" for label in labels)
    connect = results["connect"]
    command, _ = command_line(argv)
    version = results.get("version") or f"code at {benchkit.git_state()}"
    worker_timeout = f" with `dramatiq_worker_timeout={args.worker_timeout_ms}`"
    text = (
        f"{entry_title(command)}\n\n"
        f"Machine: {benchkit.machine_line()}; {version}. ONE uvicorn process (`--workers 1`, websockets, access "
        "log off), rundramatiq "
        f"`--processes {args.worker_processes} --threads {args.worker_threads}`{worker_timeout}, the WeCom sandbox, "
        f"`{args.settings}` with DEBUG=False, LOG_LEVEL=WARNING; the clients (sockets and callback sender, one "
        f"asyncio loop) share the 2 cores. {len(agents)} sockets connected and watching in "
        f"{connect['seconds']:.1f} s ({args.connect_concurrency} at a time; handshake + hello + watch p50 / p95 / "
        f"max {' / '.join(ms(percentile(sorted(connect['each']), q)) for q in (50, 95, 100))}). "
        "Busy cores with the sockets connected and no messages, right before the phase shown: "
        + ", ".join(f"{name} {phase['background']:.2f}" + ("" if phase["quiet"] else " (**not quiet**)")
                    for name, phase in results["paths"].items()) + ".\n\n"
        + table + contention(results) + "\nChecks:\n\n" + "".join(f"- {c}\n" for c in checks))
    return text, ok


def command_line(argv: list[str]) -> tuple[str, str]:
    return benchkit.command_line(argv, script="realtime.py")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return benchkit.run(lambda children, log_dir: run_benchmark(args, argv, children, log_dir), args, name="realtime")


def run_benchmark(args, argv: list[str], children: dict[str, Child], log_dir: Path) -> bool:
    port, sandbox_port = free_port(), free_port()
    env = child_env(args, port, sandbox_port)
    t_setup = time.monotonic()
    callback_url = benchkit.set_up_tenant(env, database_url=args.database_url, redis_url=args.redis_url,
                                          owner="bench/realtime.py", name="Bench realtime", secret=APP_SECRET)
    setup_out = log_dir / "setup.json"
    run_manage(["shell", "-c", SETUP_SCRIPT], {**env, "BENCH_SETUP": json.dumps(
        {"tenant": TENANT, "n": args.sockets, "out": str(setup_out)})}, timeout=600)
    setup = json.loads(setup_out.read_text())
    if setup["states"] != ["human"]:
        raise BenchError(f"the set-up left conversations in states {setup['states']}, expected only human")
    agents = [Agent(**a) for a in setup["agents"]]
    print(f"set up in {time.monotonic() - t_setup:.1f} s: {len(agents)} agents, each owning one conversation",
          flush=True)

    children["sandbox"] = benchkit.sandbox_child(env, log_dir, port=sandbox_port, callback_url=callback_url,
                                                 secret=APP_SECRET)
    children["web"] = benchkit.web_child(env, log_dir, port=port, workers=1)
    children["worker"] = benchkit.worker_child(env, log_dir, processes=args.worker_processes,
                                               threads=args.worker_threads)
    benchkit.wait_for_servers(children, sandbox_port=sandbox_port, web_port=port, redis_url=args.redis_url,
                              namespace=NAMESPACE)
    # The set-up's handoff messages go out through the sandbox first: nothing else in flight while measuring.
    wait_until(lambda: outbound_unsettled(args.database_url) == 0, timeout=180,
               what="the set-up's handoff messages to be delivered", children=list(children.values()))

    meter = CpuMeter(children, urlsplit(args.database_url).path.lstrip("/"))
    version = f"code at {benchkit.git_state()}"  # what the servers were started with
    results = asyncio.run(measure(args, agents, setup["cookie_name"], port, urlsplit(callback_url).path, env,
                                  log_dir, children, meter))
    results["version"] = version
    for child in children.values():
        if not child.alive():
            raise BenchError(f"{child.name} exited during the run:\n{child.tail()}")
    text, ok = report(args, argv, results, agents, args.database_url)
    print()
    print(text)
    if args.record:
        benchkit.record(command_line(argv)[1], text, script="realtime.py", title=SECTION_TITLE)
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
