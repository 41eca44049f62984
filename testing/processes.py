"""Live processes of the project (web server, workers, scheduler) started by tests against the test database.

A child process gets the environment of the test run with the test settings and the test database
(`live_env`); its output goes to a log file that a failing test can show (`LiveProcess.output()`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_children() -> str:
    """DATABASE_URL of the database this process uses: the test database, once pytest-django set it up."""
    db = connection.settings_dict
    host = db["HOST"] or "localhost"
    if host.startswith("/"):
        return f"postgresql://{db['USER']}:{db['PASSWORD']}@/{db['NAME']}?host={host}"
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def live_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must use the test database and Redis."""
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="config.settings.test", DATABASE_URL=database_url_for_children(),
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def worker_metrics_env(directory: Path, *, port: int | None = None) -> dict[str, str]:
    """Environment of a worker whose Prometheus metrics go to `directory` (created, fresh per test) and
    whose exposition server listens on 127.0.0.1:`port` (a free one by default), as
    config/metrics_launcher.py sets up `make run`'s worker: tests side by side never share either."""
    directory.mkdir(parents=True, exist_ok=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(directory), "dramatiq_prom_db": str(directory),
            "dramatiq_prom_host": "127.0.0.1", "dramatiq_prom_port": str(port or free_port())}


class LiveProcess:
    """A child process whose output goes to a log file shown when a test fails.

    `stopped_when`: a line of its output that says a SIGTERM has done all that matters (a Dramatiq worker's
    "Worker has been shut down.": its jobs finished or given back); stop() then kills what is left of the
    process group instead of waiting for it to exit (Dramatiq's main process takes another second or two).
    """

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str], *,
                 stopped_when: str | None = None):
        self.name = name
        self.stopped_when = stopped_when
        self._terminated = False
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        # A session of its own, so kill() takes down the children it forks (uvicorn, rundramatiq).
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _tail(self, size: int = 8192) -> str:
        with self.log_path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - size))
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a shutdown)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM, once (a shutdown, not a crash); stop() waits for it."""
        if not self._terminated and self.proc.poll() is None:
            self._terminated = True
            self.proc.terminate()

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.terminate()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    self.proc.wait(0.05)
                    break
                except subprocess.TimeoutExpired:
                    if self.stopped_when and self.stopped_when in self._tail():
                        break
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
