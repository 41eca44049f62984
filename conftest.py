"""Project-wide test set-up: the shared fixtures come from the `testing` package, as pytest plugins.

testing.fixtures: the committed tenants alpha and beta, committed database access, Redis, live
processes against the test database, the WeCom sandbox. testing.browser: Debian's Chromium driven
by Playwright (`browser`, `page`). docs/TESTING.md tells how the tests are laid out.
"""

pytest_plugins = ["testing.fixtures", "testing.browser"]
