"""`manage.py scheduler`: the periodic-job process (one active instance, leader lock in Redis).

It serves its own metrics (SCHEDULER_METRICS_HOST:SCHEDULER_METRICS_PORT, default 127.0.0.1:9192):
the health gauges the leader computes, whether it leads, and what its jobs recorded
(docs/OBSERVABILITY.md). One process, so no multiprocess directory is needed.
"""

import signal

import structlog
from django.conf import settings
from prometheus_client import start_http_server

from tenants.log_context import LoggedCommand
from tenants.metrics import HEALTH, exposition_registry
from tenants.scheduling import Scheduler

logger = structlog.get_logger("tenants.scheduler")


class Command(LoggedCommand):
    help = "Run periodic jobs (sweepers, SLA timers, health gauges) for every tenant until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=1.0, help="seconds between checks")

    def handle(self, *args, tick, **options):
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        scheduler = Scheduler(tick_seconds=tick)
        serve_metrics(settings.SCHEDULER_METRICS_HOST, settings.SCHEDULER_METRICS_PORT)
        scheduler.run_forever(lambda: stopping)


def serve_metrics(host: str, port: int) -> None:
    """The exposition server, on a thread of this process. A port already taken (a second scheduler on
    the same machine) is logged, not fatal: the periodic jobs matter more than their metrics."""
    if not port:
        return
    try:
        start_http_server(port, addr=host, registry=exposition_registry(HEALTH))
    except OSError as exc:
        logger.error("scheduler.metrics_unavailable", host=host, port=port, error=str(exc))
        return
    logger.info("scheduler.metrics_serving", host=host, port=port)
