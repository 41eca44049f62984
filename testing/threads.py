"""Running parts of a test in threads (races) so that no exception is lost and no thread is left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_in_threads(*callables: Callable[[], Any], timeout: float = 30) -> list[Any]:
    """Run each callable in a thread of its own at the same time; return their results in order.

    The first exception raised in a thread is raised here, in the test. Every thread must finish
    within `timeout` seconds (joined, then checked with `is_alive()`), or the test fails saying which
    did not. Each thread closes its own database connections when it is done (Django opens one per
    thread, and a test that commits would otherwise leave them open). To make threads meet at one
    point, give them a `threading.Barrier` (with a timeout) and `wait()` in each.
    """
    results: list[Any] = [None] * len(callables)
    errors: list[BaseException] = []  # in the order they were raised
    lock = threading.Lock()

    def run(index: int, fn: Callable[[], Any]) -> None:
        try:
            results[index] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, fn), name=f"test-thread-{i}-{getattr(fn, '__name__', 'fn')}",
                                daemon=True)
               for i, fn in enumerate(callables)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    still_running = [thread.name for thread in threads if thread.is_alive()]
    if errors:
        first = errors[0]
        if still_running:
            first.add_note(f"still running after {timeout}s: {', '.join(still_running)}")
        raise first
    assert not still_running, f"threads did not finish within {timeout}s: {', '.join(still_running)}"
    return results
