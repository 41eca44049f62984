"""The web's /metrics: open without METRICS_TOKEN, bearer token required with it (tenant names are labels)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
METRIC = "django_http_requests_total_by_view_transport_method_total"


def test_open_without_a_token(settings, tenants_world):
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics")
    assert response.status_code == 200 and METRIC in response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic c2VjcmV0LXRva2Vu", "secret-token"])
def test_a_missing_or_wrong_token_is_refused(settings, tenants_world, authorization):
    settings.METRICS_TOKEN = "secret-token"
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = Client(HTTP_HOST="alpha.test").get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert METRIC not in response.text


def test_the_right_token_is_served(settings, tenants_world):
    settings.METRICS_TOKEN = "secret-token"
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer secret-token")
    assert response.status_code == 200 and METRIC in response.text
