"""Project-wide test set-up: the shared fixtures come from the `testing` package, as pytest plugins.

testing.fixtures: the committed tenants alpha and beta, committed database access, Redis, live
processes against the test database, the WeCom sandbox. testing.browser: Debian's Chromium driven
by Playwright (`browser`, `page`). docs/TESTING.md tells how the tests are laid out.
"""

# Still imported from here by tenants/tests/test_scheduling.py and conversations/tests/test_ai_breaker.py,
# which others are rewriting; they move to `testing.processes` / `testing.waiting` and then these names go.
from testing.processes import ROOT, free_port, live_env  # noqa: F401
from testing.waiting import wait_until  # noqa: F401

pytest_plugins = ["testing.fixtures", "testing.browser"]
