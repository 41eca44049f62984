"""The floor: a stored message answered with no framework at all, to measure what our path costs above the bare work.

Per message, the least any implementation must do (issue 16): insert the message and commit (psycopg), select the
contact's recent turns as context, ask the same fake model (httpx, the sandbox's /v1/chat/completions), send the
answer through the same sandbox's WeCom `message/send` (httpx), and mark the message answered (an update and a
commit). No web server, no queue, no ORM, no trace, no knowledge base, no rate limits, no ledger: nothing that
makes the platform operable, which is exactly what the ratio prices.

Reported: CPU per message of this process (the floor's own Python) and of PostgreSQL (its backends of the
benchmark's database and its server processes). The sandbox's CPU (WeCom and the model: not ours) is shown apart.
bench/pipeline.py runs the floor as its last phase, on the same machine, database server and sandbox, and divides
its own CPU per message by the floor's ("our cost against the bare work, in one run").

Standalone (its own sandbox and database):

    .venv/bin/python bench/floor.py --messages 3000 --threads 4
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import benchkit  # bench/ is on sys.path when run as a script
import httpx
import psycopg
from benchkit import AGENT_ID, CORP_ID, Child, free_port

CREATE = ("CREATE TABLE bench_floor_message (id bigserial PRIMARY KEY, contact text NOT NULL, msg_id text NOT NULL "
          "UNIQUE, content text NOT NULL, answer text, status text NOT NULL DEFAULT 'pending', "
          "received_at timestamptz NOT NULL DEFAULT now()); CREATE INDEX ON bench_floor_message (contact, id)")
DROP = "DROP TABLE IF EXISTS bench_floor_message"
INSERT = "INSERT INTO bench_floor_message (contact, msg_id, content) VALUES (%s, %s, %s) RETURNING id"
CONTEXT = ("SELECT content, answer FROM bench_floor_message WHERE contact = %s AND id < %s "
           "ORDER BY id DESC LIMIT 10")
ANSWERED = "UPDATE bench_floor_message SET answer = %s, status = 'sent' WHERE id = %s"
COUNT_SENT = "SELECT count(*) FROM bench_floor_message WHERE status = 'sent'"
SYSTEM_PROMPT = "你是企业的客服助手。只根据资料回答；资料里没有的，说不知道。"
QUESTION = "请问你们几点营业？周末也营业吗？"
SECRET = "bench-floor-secret"


@dataclass
class FloorResult:
    messages: int
    seconds: float
    cpu: dict[str, float]  # average cores per role over the run

    def ms_per_message(self, role: str) -> float:
        return self.cpu.get(role, 0.0) * self.seconds / max(1, self.messages) * 1000


class FloorMeter(benchkit.CpuMeter):
    ROLES = ("floor", "sandbox", "postgres", "redis", "other", "idle")


def run_floor(*, database_url: str, sandbox_base: str, meter: benchkit.CpuMeter, messages: int, threads: int,
              contacts: int, secret: str = SECRET) -> FloorResult:
    """Answer `messages` messages the bare way from `threads` threads (a connection and an HTTP client each);
    CPU measured by `meter` (its first role is this process)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(DROP)
        conn.execute(CREATE)
    token = httpx.get(f"{sandbox_base}/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": secret},
                      timeout=10).json()["access_token"]
    numbers = itertools.count()
    lock = threading.Lock()
    failures: list[str] = []

    def answer_messages(db: psycopg.Connection, http: httpx.Client) -> None:
        while True:
            with lock:
                n = next(numbers)
            if n >= messages:
                return
            try:
                answer_one(db, http, n)
            except Exception as error:  # noqa: BLE001 - reported, and the run fails
                failures.append(f"message {n}: {error!r}")
                return

    def answer_one(db: psycopg.Connection, http: httpx.Client, n: int) -> None:
        contact = f"floor-c{n % contacts:04d}"
        text = f"echo:floor-{n:06d} {QUESTION}"
        (row_id,) = db.execute(INSERT, (contact, f"floor-{n}", text)).fetchone()
        db.commit()
        turns = db.execute(CONTEXT, (contact, row_id)).fetchall()
        history = []
        for content, answer in reversed(turns):
            history.append({"role": "user", "content": content})
            if answer:
                history.append({"role": "assistant", "content": answer})
        db.commit()
        reply = http.post(f"{sandbox_base}/v1/chat/completions", json={
            "model": "sandbox-chat", "max_tokens": 512, "temperature": 0.2,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *history, {"role": "user", "content": text}],
        })
        reply.raise_for_status()
        answer = reply.json()["choices"][0]["message"]["content"]
        sent = http.post(f"{sandbox_base}/cgi-bin/message/send", params={"access_token": token}, json={
            "touser": contact, "msgtype": "text", "agentid": AGENT_ID, "text": {"content": answer}}).json()
        if sent.get("errcode") != 0:
            raise RuntimeError(f"message/send: {sent}")
        db.execute(ANSWERED, (answer, row_id))
        db.commit()

    # Connected before the first snapshot and closed after the last: a PostgreSQL backend that exits in between
    # takes its CPU time with it.
    sessions = [(psycopg.connect(database_url), httpx.Client(timeout=10)) for _ in range(threads)]
    try:
        before = meter.snapshot()
        pool = [threading.Thread(target=answer_messages, args=session, name=f"floor-{k}")
                for k, session in enumerate(sessions)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        after = meter.snapshot()
    finally:
        for db, http in sessions:
            db.close()
            http.close()
    if failures:
        raise benchkit.BenchError("the floor failed: " + "; ".join(failures[:3]))
    with psycopg.connect(database_url, autocommit=True) as conn:
        answered = conn.execute(COUNT_SENT).fetchone()[0]
        conn.execute(DROP)
    if answered != messages:
        raise benchkit.BenchError(f"the floor answered {answered} of {messages} messages")
    return FloorResult(messages, after.at - before.at, meter.usage(before, after))


def main(argv: list[str]) -> int:
    parser = benchkit.argument_parser(__doc__)
    benchkit.add_common_options(parser, database="wecomdesk_bench_floor", redis_db=7)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4, help="threads answering side by side")
    parser.add_argument("--contacts", type=int, default=200)
    args = parser.parse_args(argv)

    def body(children: dict[str, Child], log_dir: Path) -> bool:
        benchkit.ensure_database(args.database_url)
        sandbox_port = free_port()
        children["sandbox"] = benchkit.sandbox_child(dict(os.environ), log_dir, port=sandbox_port, secret=SECRET,
                                                     callback_url="http://127.0.0.1:9/unused")
        benchkit.wait_until(lambda: benchkit.http_ok(sandbox_port, "/sandbox/health"), timeout=30,
                            what="the sandbox", children=[children["sandbox"]])
        meter = FloorMeter(children, args.database_url.rsplit("/", 1)[-1])
        result = run_floor(database_url=args.database_url, sandbox_base=f"http://127.0.0.1:{sandbox_port}",
                           meter=meter, messages=args.messages, threads=args.threads, contacts=args.contacts)
        rate = result.messages / result.seconds
        print(f"floor: {result.messages:,} messages in {result.seconds:.1f} s ({rate:,.0f} msg/s), "
              f"{args.threads} threads")
        print("CPU ms per message: " + ", ".join(f"{role} {result.ms_per_message(role):.2f}"
                                                 for role in ("floor", "postgres", "sandbox")))
        print(f"floor + postgres: {result.ms_per_message('floor') + result.ms_per_message('postgres'):.2f} ms")
        return True

    return benchkit.run(body, args, name="floor")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
