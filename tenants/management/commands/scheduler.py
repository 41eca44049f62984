"""`manage.py scheduler`: the periodic-job process (one active instance, leader lock in Redis)."""

import signal

from tenants.log_context import LoggedCommand
from tenants.scheduling import Scheduler


class Command(LoggedCommand):
    help = "Run periodic jobs (sweepers, SLA timers) for every tenant until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=1.0, help="seconds between checks")

    def handle(self, *args, tick, **options):
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        Scheduler(tick_seconds=tick).run_forever(lambda: stopping)
