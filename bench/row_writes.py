"""What the message path's hot writes cost the client, against the ORM call each replaces.

Measures, in this process, the CPU (not wall time) that writing the same rows takes: a callback's message
(conversations/services/bulk.py `insert_row` against `Model.save()`) and a round's trace events
(conversations/services/tracing.py `save_trace_events`, one JSON document, against `bulk_create`), each inside a
transaction that is rolled back, alternating the two ways `--rounds` times. psycopg binds parameters client-side,
so quoting values into the statement is client CPU: the part this measures. Its own database
(`wecomdesk_bench_rows`, the `bench` tenant recreated) and Redis database (13).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import benchkit  # bench/ is on sys.path when run as a script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # and the project, measured in this process

APP_SECRET = "bench-rows-secret"


def measure(args) -> dict[str, list[float]]:
    """{way: [CPU ms per row or statement, one per round]}. The project is imported only once the environment
    names the bench database: Django reads its settings at setup."""
    import django

    django.setup()
    from django.db import transaction
    from django_tenants.utils import schema_context

    from conversations.models import InboundMessage, TraceEvent, WeComApp
    from conversations.services.bulk import insert_row
    from conversations.services.tracing import save_trace_events, trace_event
    from conversations.vocabulary import Stage

    payload = {"ToUserName": benchkit.CORP_ID, "FromUserName": "cust0001", "CreateTime": "1764662400",
               "MsgType": "text", "Content": "echo:abc 怎么开发票？", "MsgId": "1234567890", "AgentID": "1000002"}

    def messages(app):
        return [InboundMessage(app=app, natural_key=f"msg:{uuid.uuid4()}", source="callback", msg_type="text",
                               sender="cust0001", content=payload["Content"], payload=payload)
                for _ in range(args.rows)]

    def inbounds(app):  # trace events need a message's id and trace only
        return [InboundMessage(app=app, trace_id=uuid.uuid4(), natural_key=f"msg:{n}")
                for n in range(args.statements)]

    def events(inbound, count):
        return [trace_event(inbound=inbound, stage=Stage.RECEIVED, natural_key=inbound.natural_key,
                            msg_type="text", status="pending") for _ in range(count)]

    # way: (what to write, built before the clock starts; how to write one of them)
    ways = {
        "message: Model.save()": (messages, lambda row: row.save()),
        "message: insert_row": (messages, insert_row),
    }
    for count in (2, 50):
        def batches(app, count=count):
            return [events(inbound, count) for inbound in inbounds(app)]
        ways[f"{count} trace events: bulk_create"] = (batches, TraceEvent.objects.bulk_create)
        ways[f"{count} trace events: save_trace_events"] = (batches, save_trace_events)
    results: dict[str, list[float]] = {way: [] for way in ways}
    with schema_context(benchkit.TENANT):
        app = WeComApp.objects.get()
        for _ in range(args.rounds):
            for way, (build, write) in ways.items():
                items = build(app)
                with transaction.atomic():
                    started = time.process_time()
                    for item in items:
                        write(item)
                    results[way].append((time.process_time() - started) * 1000 / len(items))
                    transaction.set_rollback(True)
    return results


def main() -> int:
    parser = benchkit.argument_parser(__doc__)
    benchkit.add_common_options(parser, database="wecomdesk_bench_rows", redis_db=13)
    parser.add_argument("--rows", type=int, default=1000, help="messages written each way per round")
    parser.add_argument("--statements", type=int, default=300, help="trace-event statements each way per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the ways alternating within each")
    args = parser.parse_args()

    def body(children, log_dir) -> bool:
        env = benchkit.child_env(settings=args.settings, database_url=args.database_url, redis_url=args.redis_url,
                                 namespace="bench-rows", key_prefix="bench-rows", port=0, sandbox_port=0)
        benchkit.set_up_tenant(env, database_url=args.database_url, redis_url=args.redis_url,
                               owner="bench/row_writes.py", name="Bench rows", secret=APP_SECRET)
        os.environ.update(env)
        print(benchkit.machine_line())
        print(f"Code: {benchkit.git_state()}. CPU of this process per row (a message) or per statement (trace "
              f"events), {args.rounds} rounds:\n")
        print("| write | ms of client CPU, each round | best |\n|---|---|---|")
        for way, values in measure(args).items():
            print(f"| {way} | {' / '.join(f'{value:.3f}' for value in values)} | **{min(values):.3f}** |")
        return True

    return benchkit.run(body, args, name="rows")


if __name__ == "__main__":
    sys.exit(main())
