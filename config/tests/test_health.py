"""/healthz, /readyz and /metrics answer on any host; /readyz names what is down."""

import subprocess
import sys

import pytest
from django.test import Client, override_settings

from config import health

pytestmark = pytest.mark.django_db


def test_healthz_on_any_host(tenants_world):
    for host in ("localhost", "alpha.test", "10.1.2.3", "unknown.example"):
        response = Client(HTTP_HOST=host).get("/healthz")
        assert (response.status_code, response.text) == (200, "ok")


def test_readyz_ok_when_everything_answers(tenants_world):
    response = Client(HTTP_HOST="10.1.2.3").get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "broker": "ok"}}


@pytest.mark.parametrize("component", ["redis", "broker"])
def test_readyz_503_names_the_failing_component(tenants_world, component):
    dead = "redis://:secret@127.0.0.1:1/0"
    setting = "REDIS_URL" if component == "redis" else "BROKER_URL"
    with override_settings(**{setting: dead}):
        response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == [component]
    assert body["checks"][component].startswith("unavailable")
    assert "secret" not in response.text
    health._redis.cache_clear()


def test_readyz_reports_amqp_broker_down(tenants_world):
    with override_settings(BROKER_URL="amqp://guest:guest@127.0.0.1:1/"):
        response = Client().get("/readyz")
    assert response.status_code == 503 and response.json()["failing"] == ["broker"]


def test_metrics_exposed(tenants_world):
    Client().get("/healthz")
    response = Client(HTTP_HOST="localhost").get("/metrics")
    assert response.status_code == 200
    assert "django_http_requests_total_by_view_transport_method_total" in response.text


@pytest.mark.live  # runs manage.py in a process of its own
def test_check_deploy_with_production_settings_is_clean():
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 20 + "-production-secret-key-for-the-check-0123456789",
        "ALLOWED_HOSTS": "desk.example.com,.desk.example.com",
        "FIELD_ENCRYPTION_KEYS": "kR5b6S8m3G1wq4yZbQkq1v0l5r2cT8n9pX7eJ3hU6dA=",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.live  # runs manage.py in a process of its own
def test_production_settings_refuse_missing_secrets():
    result = subprocess.run([sys.executable, "manage.py", "check"],
                            env={"DJANGO_SETTINGS_MODULE": "config.settings.production", "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
