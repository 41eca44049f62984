"""Browser tests: Debian's Chromium driven by Playwright, as a pytest plugin (registered in conftest.py).

Fixtures
    browser   session-scoped; a headless Chromium (a `playwright.sync_api.Browser`, proxied).
    page      function-scoped; a page in a new browser context (fresh cookies and storage), default
              timeout 10 s. When the test fails, a full-page screenshot is saved as
              `<tmp_path>/failure.png` and its path is shown in the failure report.
Helper
    expect(page_or_locator)   Playwright's assertions; use this one, not playwright.sync_api.expect.

The page is used like Playwright's sync API (`page.goto(...)`, `page.get_by_role(...).click()`,
`expect(locator).to_have_text(...)`); it and every object it returns are proxies (see below), so
`isinstance(page, playwright.sync_api.Page)` is False. The browser is Debian's `chromium` (scripts/ensure_browser.sh
installs it; `make test` runs that first); Playwright never downloads one here. A test that uses
`browser` or `page` is marked `live` (testing/fixtures.py checks it at collection).

Why Playwright runs in a thread of its own
------------------------------------------
Playwright's sync API runs an asyncio event loop in the calling thread and, between two calls, leaves
that loop marked as the thread's running loop (see `wait_for_future` in playwright/_impl). Django then
takes every ORM call of the test (and of fixtures such as `committed_db` teardowns) for a call from
async code and raises SynchronousOnlyOperation. Setting DJANGO_ALLOW_ASYNC_UNSAFE would silence that,
but os.environ is inherited by the processes tests start (the live uvicorn server, workers), where the
check guards real async code, and it would hide real mistakes in the test process too. So the
Playwright objects live in one dedicated thread, and the test gets proxies that run each call there
and wait for its result: the test's thread never has a running loop, the ORM works as in any other
test, and Django's check stays on everywhere. Callbacks given to Playwright (`page.on(...)`,
`page.route(...)`, predicates) run in the Playwright thread with proxied arguments; do no ORM calls in
them.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

CHROMIUM_EXECUTABLE = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox. The background-networking flags stop it from reaching for
# Google's services, which this machine's closed network refuses (many connections at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEFAULT_TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1280, "height": 900}

_PAGE_KEY = pytest.StashKey[tuple]()  # (page, tmp_path) of the running test


class PlaywrightThread:
    """One thread that owns every Playwright object and runs the calls made on them."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self._ident = self._executor.submit(threading.get_ident).result()

    def run(self, fn, /, *args, **kwargs):
        """fn(*args, **kwargs) in the Playwright thread; directly when already there (callbacks)."""
        __tracebackhide__ = True
        if threading.get_ident() == self._ident:
            return fn(*args, **kwargs)
        future = self._executor.submit(fn, *args, **kwargs)
        exc = future.exception()
        if exc is None:
            return future.result()
        # Re-raise without the frames of concurrent.futures: the test's traceback goes on into fn.
        tb = exc.__traceback__
        raise exc.with_traceback(tb.tb_next if tb is not None and tb.tb_next is not None else tb)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)

    def wrap(self, value):
        """Playwright objects in `value` become proxies; plain data stays as it is."""
        return _convert(value, self._wrap_leaf, {})

    def unwrap(self, value):
        """The inverse of wrap() for arguments; plain callables become callbacks that see proxies."""
        return _convert(value, self._unwrap_leaf, {})

    def _wrap_leaf(self, value):
        if type(value).__module__.startswith("playwright.") and not isinstance(value, (Remote, BaseException)):
            return Remote(self, value)
        return value

    def _unwrap_leaf(self, value):
        if isinstance(value, Remote):
            return object.__getattribute__(value, "_target")
        if callable(value) and not isinstance(value, type):
            return self._callback(value)
        return value

    def _callback(self, fn):
        # The same wrapper each time for the same function, so that page.remove_listener(event, fn)
        # finds what page.on(event, fn) added. Kept on the function, as Playwright keeps its own.
        owner, attr = (fn.__self__, f"_browser_testing_{fn.__name__}") if inspect.ismethod(fn) else (
            fn, "_browser_testing_callback")
        wrapper = getattr(owner, attr, None)
        if wrapper is None:
            wrapper = self._make_callback(fn)
            try:
                setattr(owner, attr, wrapper)
            except (AttributeError, TypeError):
                pass  # a builtin or an object with __slots__: works, but cannot be removed by identity
        return wrapper

    def _make_callback(self, fn):
        # Playwright inspects how many arguments a handler takes: keep the signature.
        @functools.wraps(fn)
        def callback(*args, **kwargs):
            return self.unwrap(fn(*self.wrap(args), **self.wrap(kwargs)))

        return callback

    def call(self, fn, /, *args, **kwargs):
        """Run fn with unwrapped arguments in the Playwright thread and wrap what it returns."""
        __tracebackhide__ = True
        return self.wrap(self.run(fn, *self.unwrap(args), **self.unwrap(kwargs)))


def _convert(value, leaf, memo: dict):
    """leaf() applied through lists, tuples and dicts (a copy; cycles, as evaluate() can return, kept)."""
    if type(value) not in (list, tuple, dict):
        return leaf(value)
    if id(value) in memo:
        return memo[id(value)]
    if type(value) is tuple:
        return tuple(_convert(item, leaf, memo) for item in value)
    if type(value) is list:
        memo[id(value)] = result = []
        result.extend(_convert(item, leaf, memo) for item in value)
        return result
    memo[id(value)] = result = {}
    for key, item in value.items():
        result[key] = _convert(item, leaf, memo)
    return result


class Remote:
    """A proxy of a Playwright object that lives in the Playwright thread."""

    __slots__ = ("_pw", "_target")

    def __init__(self, pw: PlaywrightThread, target: Any) -> None:
        object.__setattr__(self, "_pw", pw)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str):
        pw, target = self._pw, self._target
        value = pw.run(getattr, target, name)
        if inspect.ismethod(value) or inspect.isfunction(value):

            @functools.wraps(value)
            def method(*args, **kwargs):
                __tracebackhide__ = True
                return pw.call(value, *args, **kwargs)

            return method
        return pw.wrap(value)

    def __setattr__(self, name: str, value: Any) -> None:
        self._pw.run(setattr, self._target, name, self._pw.unwrap(value))

    def __dir__(self):
        return dir(self._target)

    def __repr__(self) -> str:
        return f"<in the Playwright thread: {self._pw.run(repr, self._target)}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Remote) and self._target is object.__getattribute__(other, "_target")

    def __hash__(self) -> int:
        return id(self._target)

    # `with page.expect_navigation() as info:`, `with page.expect_popup() as popup:` ...
    def __enter__(self):
        return self._pw.call(type(self._target).__enter__, self._target)

    def __exit__(self, *exc_info):
        return self._pw.run(type(self._target).__exit__, self._target, *exc_info)


def expect(actual: Remote, message: str | None = None) -> Remote:
    """playwright.sync_api.expect for the proxied page, locators and API responses."""
    from playwright.sync_api import expect as playwright_expect

    if not isinstance(actual, Remote):
        raise TypeError(f"expect() takes a page or locator of the `page` fixture, not {actual!r}")
    pw = object.__getattribute__(actual, "_pw")
    return pw.call(playwright_expect, actual, message)


def _start_playwright():
    from playwright.sync_api import sync_playwright

    return sync_playwright().start()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium for the whole session; closed (and Playwright stopped) at its end."""
    if not os.access(CHROMIUM_EXECUTABLE, os.X_OK):
        pytest.fail(f"No browser at {CHROMIUM_EXECUTABLE}: run scripts/ensure_browser.sh (`make browser`), "
                    "which installs Debian's chromium package.", pytrace=False)
    pw = PlaywrightThread()
    playwright = browser = None
    try:
        playwright = pw.run(_start_playwright)
        # launch() gives Chromium a new empty profile (--user-data-dir in a temporary directory) and
        # removes it at close().
        browser = pw.run(playwright.chromium.launch, executable_path=CHROMIUM_EXECUTABLE, headless=True,
                         args=CHROMIUM_ARGS)
        yield pw.wrap(browser)
    finally:
        try:
            if browser is not None:
                pw.run(browser.close)
            if playwright is not None:
                pw.run(playwright.stop)
        finally:
            pw.shutdown()


@pytest.fixture
def page(browser, request, tmp_path):
    """A page in its own browser context, closed after the test; screenshot on failure."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    request.node.stash[_PAGE_KEY] = (page, tmp_path)
    yield page
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed and _PAGE_KEY in item.stash:
        page, tmp_path = item.stash[_PAGE_KEY]
        path = tmp_path / "failure.png"
        try:
            page.screenshot(path=path, full_page=True, timeout=5_000)
        except Exception as exc:  # noqa: BLE001 - the test's own failure is the one to report
            text = f"no screenshot of the page: {type(exc).__name__}: {exc}"
        else:
            text = f"screenshot of the page when the test failed: {path}"
        report.sections.append(("browser", text))  # shown with the failure, under "browser"
    return report
