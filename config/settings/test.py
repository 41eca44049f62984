"""pytest: real PostgreSQL and Redis, isolated from a developer's own data.

Redis state of the tests lives in its own logical database (TEST_REDIS_DB) and
Dramatiq namespace, so a test run never consumes or clears `make run`'s queues.
"""

import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from config import env, redis_sentinel
from config.settings.base import *  # noqa: F403
from config.settings.base import BROKER_URL, CACHES, CHANNEL_LAYERS, DRAMATIQ_BROKER, REDIS_SENTINEL, TENANT_APPS


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


TEST_REDIS_DB = env.get_int("TEST_REDIS_DB", 15)
REDIS_URL = _with_redis_db(env.REDIS_URL, TEST_REDIS_DB)
CACHES["default"].update(redis_sentinel.cache_location(REDIS_URL, REDIS_SENTINEL))
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [redis_sentinel.channel_layer_host(REDIS_URL, REDIS_SENTINEL)]
if not BROKER_URL.startswith("amqp"):
    BROKER_URL = _with_redis_db(BROKER_URL, TEST_REDIS_DB)
    DRAMATIQ_BROKER.update(redis_sentinel.dramatiq_broker(BROKER_URL, REDIS_SENTINEL, namespace="dramatiq-test"))
    # A SIGKILLed worker's unacknowledged messages go to another worker once its heartbeat is 10 s old (Dramatiq's
    # default: 60 s), noticed by maintenance on 2 % of broker commands (default 0.1 %, about 30 s more at a test
    # worker's polling): the live tests that kill workers waited over a minute for that. A live worker's
    # heartbeat is renewed by every poll of its idle queues, at least once a second.
    DRAMATIQ_BROKER["OPTIONS"] = {**DRAMATIQ_BROKER["OPTIONS"], "heartbeat_timeout": 10_000,
                                  "maintenance_chance": 20_000}
else:
    # RabbitMQ: a vhost of the run's own, as the Redis db is (created by the test session: testing/fixtures.py).
    BROKER_URL = urlunsplit(urlsplit(BROKER_URL)._replace(path=f"/wecomdesk-test-{TEST_REDIS_DB}"))
    DRAMATIQ_BROKER["OPTIONS"] = {**DRAMATIQ_BROKER["OPTIONS"], "url": BROKER_URL}

# A tenant app that exists only for tests of the tenancy plumbing itself.
TENANT_APPS = [*TENANT_APPS, "tenants.tests.probe"]
INSTALLED_APPS = [*INSTALLED_APPS, "tenants.tests.probe"]  # noqa: F405

DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Media of a test run in a temporary directory, one per Redis database like everything else of a
# run; the same path in the processes a test starts (web, worker), so they see each other's files.
MEDIA_ROOT = env.get("TEST_MEDIA_ROOT") or str(Path(tempfile.gettempdir()) / f"wecomdesk-test-media-{TEST_REDIS_DB}")
# Never the real WeCom from a test: tests that talk to WeCom point this at the sandbox.
# Live tests hand their worker the sandbox's address through TEST_WECOM_API_BASE.
WECOM_API_BASE = env.get("TEST_WECOM_API_BASE", "http://127.0.0.1:9")
# The sandbox and fake model listen on 127.0.0.1; tests of the policy turn this off (tenants/outbound_urls.py).
ALLOW_PRIVATE_OUTBOUND_URLS = True
# The tests start dozens of workers, most of which never embed a question: 1.5 s of CPU each for a warm-up would
# only slow the suite. A worker that answers loads the models on its first question, as before the warm-up;
# conversations/tests/test_warmup.py covers the warm-up itself.
WARM_UP_ANSWERING = env.get_bool("WARM_UP_ANSWERING", False)
