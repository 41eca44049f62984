"""run_in_threads: results in order, the first exception re-raised in the test, a thread left running is a failure."""

from __future__ import annotations

import threading

import pytest

from testing.threads import run_in_threads


def test_results_come_back_in_the_order_of_the_callables():
    start = threading.Barrier(3, timeout=5)

    def part(value: int):
        return lambda: (start.wait(), value)[1]

    assert run_in_threads(part(1), part(2), part(3), timeout=10) == [1, 2, 3]


def test_an_exception_in_a_thread_is_raised_in_the_test():
    def fails():
        raise ValueError("in the thread")

    with pytest.raises(ValueError, match="in the thread"):
        run_in_threads(lambda: "fine", fails, timeout=10)


def test_a_thread_that_does_not_finish_fails_the_test():
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="did not finish within 0.2s: test-thread-0-wait"):
            run_in_threads(release.wait, timeout=0.2)
    finally:
        release.set()  # let the daemon thread end
