"""Start a process role with its Prometheus multiprocess directory ready, then become the command.

    python -m config.metrics_launcher web python -m gunicorn -c python:config.gunicorn config.wsgi
    python -m config.metrics_launcher websocket python -m uvicorn config.asgi:application ...
    python -m config.metrics_launcher worker python manage.py rundramatiq ...

prometheus_client chooses multiprocess mode once, when it is first imported, and `django.setup()`
imports it (django-prometheus): so PROMETHEUS_MULTIPROC_DIR must be in the environment before Python
starts Django, which only a step before the command can do. The directory is emptied here, once per
start of the role and before any of its processes (uvicorn or gunicorn workers, Dramatiq worker
processes) writes to it: files left by the previous run would add its counts, and its dead pids,
to the new one's.

The directory is PROMETHEUS_MULTIPROC_DIR if the environment sets it (Kubernetes: an emptyDir
volume), else `<METRICS_DIR>/<role>` (METRICS_DIR defaults to `.services/prometheus` in the
project): web (gunicorn) and websocket (uvicorn) on one machine, as `make run` starts them, each keep
their own and serve it at their own /metrics. The scheduler, a single process, runs without it (docs/OBSERVABILITY.md).

Imports nothing of Django or of the project, so that nothing imports prometheus_client too early.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROLES = ("web", "websocket", "worker")
DEFAULT_METRICS_DIR = Path(__file__).resolve().parent.parent / ".services" / "prometheus"
USAGE = "usage: python -m config.metrics_launcher {web|websocket|worker} COMMAND [ARG...]"


def prepare(role: str, environ: dict[str, str]) -> Path:
    """Create and empty the role's directory; set PROMETHEUS_MULTIPROC_DIR in `environ`; return it."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    directory = Path(environ.get("PROMETHEUS_MULTIPROC_DIR") or
                     Path(environ.get("METRICS_DIR") or DEFAULT_METRICS_DIR) / role)
    directory.mkdir(parents=True, exist_ok=True)
    # Only prometheus_client's own files: the directory may be a volume that holds something else.
    for leftover in directory.glob("*.db"):
        leftover.unlink(missing_ok=True)
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    if role == "worker":  # Dramatiq's middleware writes and serves the same directory
        environ["dramatiq_prom_db"] = str(directory)
    return directory


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(USAGE)
    role, command = argv[0], argv[1:]
    try:
        prepare(role, os.environ)
    except ValueError as exc:
        sys.exit(f"{exc}\n{USAGE}")
    os.execvp(command[0], command)  # noqa: S606 - becomes the role's command, as a shell's exec would


if __name__ == "__main__":
    main(sys.argv[1:])
