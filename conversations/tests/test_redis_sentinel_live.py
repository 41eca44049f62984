"""Redis through Sentinel with real servers (testing/redis_sentinel.py: a master, a replica, three Sentinels):
every Redis user of the settings goes to the master the Sentinels name, and after the master is SIGKILLed and
the replica promoted, the whole stack finds the new master by itself and answers every message exactly once,
in order, nothing lost (config/redis_sentinel.py, docs/DEPLOYMENT.md "Redis through Sentinel")."""

from __future__ import annotations

import json
import sys

import dramatiq
import httpx
import pytest
from django.conf import settings as django_settings
from django_tenants.utils import schema_context

from config.redis_sentinel import SentinelRedisBroker
from conversations.models import InboundMessage, OutboundMessage
from testing.processes import LiveProcess, free_port, live_env
from testing.redis_sentinel import SentinelCluster
from testing.waiting import wait_until, wait_until_idle
from testing.wecom import sender_for
from wecom_sandbox.callbacks import text_message

from .test_answering_live import (  # noqa: F401  (stack is a fixture)
    WORKER_QUEUES,
    stack,
    visible,
)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def sentinel_cluster(tmp_path_factory):
    cluster = SentinelCluster(tmp_path_factory.mktemp("redis-sentinel")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def through_sentinel(sentinel_cluster, monkeypatch):
    """Processes started from now on reach Redis (cache, layer, broker, own clients) through the cluster's
    Sentinels (live_env copies os.environ), and so does this process's view of the broker's queues."""
    for name, value in sentinel_cluster.env.items():
        monkeypatch.setenv(name, value)
    # A Redis broker whatever this run's BROKER_URL: the test settings give it the test Redis db.
    monkeypatch.setenv("BROKER_URL", django_settings.REDIS_URL)
    previous = dramatiq.get_broker()
    dramatiq.set_broker(SentinelRedisBroker(url=django_settings.REDIS_URL, sentinels=sentinel_cluster.sentinels,
                                            master=sentinel_cluster.master_name, namespace="dramatiq-test"))
    yield sentinel_cluster
    dramatiq.set_broker(previous)


def on_server(cluster: SentinelCluster, port: int):
    return cluster.client(port).__class__(host="127.0.0.1", port=port, db=django_settings.TEST_REDIS_DB,
                                          socket_timeout=2)


RESOLVE = """
import json
import dramatiq
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from config.health import CHECKS
from limits import parse
from tenants.redis import rate_limiter, redis_client

cache.set("sentinel-probe", "cached", 60)
async_to_sync(get_channel_layer().group_add)("sentinel-probe", "specific.probe!1")
broker = dramatiq.get_broker()
broker.declare_queue("sentinel-probe")
broker.enqueue(dramatiq.Message(queue_name="sentinel-probe", actor_name="probe", args=(), kwargs={}, options={}))
client = redis_client()
print("RESULT " + json.dumps({
    "cache_pool": type(cache._cache._get_connection_pool(True)).__name__,
    "broker": type(broker).__name__, "broker_pool": type(broker.client.connection_pool).__name__,
    "client_pool": type(client.connection_pool).__name__,
    "lock": client.lock("sentinel-probe-lock", timeout=60).acquire(blocking=False),
    "limited": rate_limiter().hit(parse("5/minute"), "sentinel-probe"),
    "cached": cache.get("sentinel-probe"),
    "probes": [CHECKS["redis"](), CHECKS["broker"]()],  # /readyz's checks: None when reachable
}))
"""


def test_settings_resolve_every_redis_user_to_the_sentinels_master(through_sentinel, start_process):
    cluster = through_sentinel
    probe = start_process("resolve", "shell", "-c", RESOLVE)
    assert probe.proc.wait(60) == 0, probe.output()
    result = json.loads(next(line for line in probe.output().splitlines() if line.startswith("RESULT "))[7:])
    assert result == {
        "cache_pool": "SentinelConnectionPool", "broker": "SentinelRedisBroker",
        "broker_pool": "SentinelConnectionPool", "client_pool": "SentinelConnectionPool",
        "lock": True, "limited": True, "cached": "cached",
        "probes": [None, None],
    }
    # Every key is on the master the Sentinels name (and replicated), none on REDIS_URL's own server.
    master = on_server(cluster, cluster.master_port)
    keys = {key.decode() for key in master.scan_iter(match="*sentinel-probe*")}
    assert any(key.endswith(":sentinel-probe") and key.startswith("public:") for key in keys), keys  # cache
    assert "wecomdesk:asgi:group:sentinel-probe" in keys  # channel layer
    assert master.hlen("dramatiq-test:sentinel-probe.msgs") == 1  # broker
    assert master.exists("sentinel-probe-lock")  # our own client's lock
    assert any(key.startswith("LIMITS") for key in keys), keys  # rate limiter
    replica_port = cluster.servers["replica"].port
    wait_until(lambda: {key.decode() for key in on_server(cluster, replica_port).scan_iter(match="*sentinel-probe*")}
               == keys, timeout=5, message="the replica to have the keys")
    plain = httpx.URL(django_settings.REDIS_URL)
    assert plain.port not in (cluster.master_port, replica_port)
    direct = on_server(cluster, plain.port or 6379)
    assert not list(direct.scan_iter(match="*sentinel-probe*"))
    master.delete(*{key.encode() for key in keys})


@pytest.mark.timeout(240)
def test_master_killed_the_stack_follows_the_promoted_replica_and_answers_each_message_once(
        through_sentinel, stack, sandbox, tmp_path):  # noqa: F811
    cluster = through_sentinel
    app, worker = stack
    first = worker()  # booting while the web server does
    port = free_port()
    web = LiveProcess("web-sentinel", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
                                       "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                      tmp_path, live_env())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(f"{base}/readyz") == 200, timeout=30, message=web.output)
        sender = sender_for(app, f"{base}/t/alpha/wecom/callback/{app.callback_id}/")
        contacts = [f"sent{n}" for n in range(5)]
        expected: dict[str, list[str]] = {user: [] for user in contacts}

        def send_round(label: str) -> None:
            for i in range(4):
                for user in contacts:
                    text = f"{user}-{label}{i}"
                    result = sender.send(text_message(corp_id=app.corp_id, agent_id=app.agent_id, from_user=user,
                                                      content=f"echo:{text}"))
                    assert result.delivered, result.statuses
                    expected[user].append(text)

        def all_answered() -> bool:
            return all(len(visible(sandbox, user)) >= len(texts) for user, texts in expected.items())

        send_round("before")
        wait_until(all_answered, timeout=60, interval=0.2, message=lambda: first.output()[-2000:])

        old = cluster.kill_master()  # SIGKILL: no shutdown, connections reset
        send_round("during")  # stored at once; the switch delays the jobs, the sweeper re-sends a lost enqueue
        new = cluster.wait_for_failover(old)
        assert new != old
        send_round("after")
        wait_until(all_answered, timeout=120, interval=0.3,
                   message=lambda: f"{ {u: len(visible(sandbox, u)) for u in contacts} }\n{first.output()[-3000:]}")
        wait_until_idle(schemas=["alpha"], queues=WORKER_QUEUES, timeout=90, message=lambda: first.output()[-2000:])
        for user, texts in expected.items():
            assert visible(sandbox, user) == texts, user  # each exactly once, in order
        with schema_context("alpha"):
            assert not InboundMessage.objects.filter(app=app).exclude(status="processed").exists()
            assert not OutboundMessage.objects.filter(contact__app=app).exclude(status="sent").exists()
        # The web's probe follows the Sentinels too: ready again, on the promoted master.
        assert httpx.get(f"{base}/readyz", timeout=5).json()["checks"] == {"postgres": "ok", "redis": "ok",
                                                                         "broker": "ok"}
        assert first.proc.poll() is None  # the same worker carried on: it reconnected by itself
    finally:
        web.stop()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None
