"""The tenant API's conventions (docs/API.md): the error shape for every status, filtering and ordering of the
lists, the OpenAPI schema (valid, complete, the tenant's server URL) and the docs pages with local assets only."""

import json
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django_tenants.utils import schema_context
from rest_framework.exceptions import Throttled

from config.api_errors import api_exception_handler
from conversations.models import OutboundMessage
from testing.accounts import api_client, staff_client
from testing.factories import (
    FallbackScriptFactory,
    KnowledgeEntryFactory,
    OutboundMessageFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# -- errors --------------------------------------------------------------------------------------------


def error(response, status: int, code: str) -> dict:
    body = response.json()
    assert (response.status_code, body["code"], response["Content-Type"]) == (status, code, "application/json"), body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_authentication_errors(api_keys):
    error(api_client(None).get("/t/alpha/api/knowledge/"), 401, "not_authenticated")
    error(api_client("wd_nope_nope").get("/t/alpha/api/knowledge/"), 401, "authentication_failed")
    error(api_client(api_keys["beta"]).get("/t/alpha/api/knowledge/"), 401, "authentication_failed")
    assert api_client(None).get("/t/alpha/api/knowledge/")["WWW-Authenticate"] == "Api-Key"


def test_a_signed_in_user_who_is_not_staff_is_forbidden(tenant_a):
    with schema_context("alpha"):
        user = UserFactory(username="customer@alpha.test", is_staff=False)
        client = Client()
        client.force_login(user)
    error(client.get("/t/alpha/api/knowledge/"), 403, "permission_denied")


def test_not_found_method_media_type_and_parse_errors(api_keys):
    api = api_client(api_keys["alpha"])
    error(api.get("/t/alpha/api/knowledge/999999/"), 404, "not_found")
    error(api.get("/t/alpha/api/knowledge/not-a-number/"), 404, "not_found")
    body = error(api.get("/t/alpha/api/no-such-thing/"), 404, "not_found")  # Django's 404, no DRF view reached
    assert body["detail"] == "未找到。"  # zh-hans first, DRF's own words
    assert api.get("/t/alpha/api/no-such-thing/", HTTP_ACCEPT_LANGUAGE="en").json()["detail"] == "Not found."
    error(api.delete("/t/alpha/api/dead-letters/"), 405, "method_not_allowed")
    error(api.post("/t/alpha/api/knowledge/", "question=a", content_type="application/x-www-form-urlencoded"),
          415, "unsupported_media_type")
    error(api.post("/t/alpha/api/knowledge/", "{not json", content_type="application/json"), 400, "parse_error")


def test_validation_errors_keep_every_field_under_errors(api_keys):
    api = api_client(api_keys["alpha"])
    body = error(api.post("/t/alpha/api/dead-letters/resend/", {"ids": [1, "x"]}, content_type="application/json",
                          HTTP_ACCEPT_LANGUAGE="en"), 400, "invalid")
    assert body == {"detail": "ids.1: A valid integer is required.", "code": "invalid",
                    "errors": {"ids": {"1": ["A valid integer is required."]}}}
    body = error(api.patch("/t/alpha/api/desk-settings/update/", {"context_turns": 0, "knowledge_min_score": 3},
                           content_type="application/json"), 400, "invalid")
    assert set(body["errors"]) == {"context_turns", "knowledge_min_score"}


def test_the_services_refusals_are_validation_errors_too(api_keys):
    api = api_client(api_keys["alpha"])
    api.post("/t/alpha/api/knowledge/", {"question": "发票", "answer": "可以开"}, content_type="application/json")
    body = error(api.post("/t/alpha/api/knowledge/", {"question": "发票", "answer": "again"},
                          content_type="application/json"), 400, "invalid")
    assert list(body["errors"]) == ["question"] and body["detail"].startswith("question: ")
    body = error(api.get("/t/alpha/api/knowledge/search/", {"q": "发票", "limit": 500}), 400, "invalid")
    assert list(body["errors"]) == ["limit"]


def test_throttling_has_the_shape_and_the_retry_header():
    response = api_exception_handler(Throttled(wait=7), {})
    assert (response.status_code, response.data["code"], response["Retry-After"]) == (429, "throttled", "7")
    assert set(response.data) == {"detail", "code"}


def test_django_errors_outside_the_api_stay_html(api_keys):
    response = api_client(api_keys["alpha"]).get("/t/alpha/agent/no-such-page/")
    assert response.status_code == 404 and "json" not in response["Content-Type"]


# -- filtering and ordering ------------------------------------------------------------------------------


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def test_dead_letters_by_errcode_date_range_recipient_and_ordering(api_keys, tenant_b):
    with schema_context("alpha"):
        dead = OutboundMessage.Status.DEAD
        old = OutboundMessageFactory(status=dead, last_errcode=45009, attempts=8, contact__external_id="zhangsan")
        new = OutboundMessageFactory(status=dead, last_errcode=-1, attempts=3, contact__external_id="lisi")
        OutboundMessage.objects.filter(pk=old.pk).update(created_at="2026-01-01T00:00:00Z")
        OutboundMessage.objects.filter(pk=new.pk).update(created_at="2026-03-01T00:00:00Z")
    with schema_context("beta"):  # same errcode in another tenant: never listed for alpha
        OutboundMessageFactory(status=OutboundMessage.Status.DEAD, last_errcode=45009)
    api = api_client(api_keys["alpha"])
    assert ids(api.get("/t/alpha/api/dead-letters/", {"errcode": 45009})) == [old.pk]
    assert ids(api.get("/t/alpha/api/dead-letters/", {"created_after": "2026-02-01T00:00:00+08:00"})) == [new.pk]
    assert ids(api.get("/t/alpha/api/dead-letters/", {"created_before": "2026-02-01T00:00:00Z"})) == [old.pk]
    assert ids(api.get("/t/alpha/api/dead-letters/", {"recipient": "lisi"})) == [new.pk]
    assert ids(api.get("/t/alpha/api/dead-letters/", {"ordering": "-created_at"})) == [new.pk, old.pk]
    assert ids(api.get("/t/alpha/api/dead-letters/", {"ordering": "attempts"})) == [new.pk, old.pk]
    # An offset PostgreSQL would refuse is compared in UTC instead.
    assert ids(api.get("/t/alpha/api/dead-letters/", {"created_before": "2026-01-02T20:00:00+23:30"})) == [old.pk]
    for bad in ({"errcode": "1.5"}, {"errcode": "x"}, {"created_after": "yesterday"},
                {"created_after": "9999-12-31T23:00:00-05:00"}):
        assert list(error(api.get("/t/alpha/api/dead-letters/", bad), 400, "invalid")["errors"]) == list(bad)


def test_knowledge_by_enabled_tag_and_text(api_keys):
    with schema_context("alpha"):
        returns = KnowledgeEntryFactory(question="如何退货", answer="七天无理由", tags=["售后"])
        invoice = KnowledgeEntryFactory(question="发票", answer="订单完成后可开具", tags=["财务"], enabled=False)
    api = api_client(api_keys["alpha"])
    assert ids(api.get("/t/alpha/api/knowledge/", {"enabled": "false"})) == [invoice.pk]
    assert ids(api.get("/t/alpha/api/knowledge/", {"tag": "售后"})) == [returns.pk]
    assert ids(api.get("/t/alpha/api/knowledge/", {"text": "订单"})) == [invoice.pk]  # in the answer
    assert ids(api.get("/t/alpha/api/knowledge/", {"text": "退货"})) == [returns.pk]  # in the question
    assert ids(api.get("/t/alpha/api/knowledge/", {"ordering": "-id"})) == [invoice.pk, returns.pk]
    assert ids(api.get("/t/alpha/api/knowledge/", {"enabled": "1"})) == [returns.pk]
    refused = error(api.get("/t/alpha/api/knowledge/", {"enabled": "maybe"}, HTTP_ACCEPT_LANGUAGE="en"), 400, "invalid")
    assert refused["errors"] == {"enabled": ["Must be a valid boolean."]}


def test_fallback_scripts_by_enabled_and_keyword(api_keys):
    with schema_context("alpha"):
        shipping = FallbackScriptFactory(name="物流", keywords=["快递", "物流"], enabled=True)
        off = FallbackScriptFactory(name="售后", keywords=["退货"], enabled=False)
    api = api_client(api_keys["alpha"])
    assert ids(api.get("/t/alpha/api/fallback-scripts/", {"keyword": "快递"})) == [shipping.pk]
    assert ids(api.get("/t/alpha/api/fallback-scripts/", {"enabled": "false"})) == [off.pk]
    assert ids(api.get("/t/alpha/api/fallback-scripts/", {"ordering": "-name"})) == sorted(
        [shipping.pk, off.pk], key=lambda pk: {shipping.pk: "物流", off.pk: "售后"}[pk], reverse=True)


def test_a_huge_offset_is_an_empty_page(api_keys):
    response = api_client(api_keys["alpha"]).get("/t/alpha/api/knowledge/", {"offset": 10**30})
    assert response.status_code == 200 and response.json()["results"] == []


# -- the OpenAPI schema ----------------------------------------------------------------------------------


def test_the_schema_is_valid_openapi_without_warnings(tenant_a, tmp_path):
    target = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))
    assert json.loads(target.read_text())["openapi"].startswith("3.")


def schema_of(client, url="/t/alpha/api/schema/", **extra) -> dict:
    response = client.get(url, {"format": "json"}, **extra)
    assert response.status_code == 200
    return response.json()


def test_every_operation_is_documented_with_security_tags_and_errors(api_keys):
    schema = schema_of(api_client(api_keys["alpha"]))
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "`Api-Key wd_...`, created in the tenant admin (API keys)."}
    operations = [(path, method, operation) for path, item in schema["paths"].items()
                  for method, operation in item.items()]
    assert len(operations) >= 19
    for path, method, operation in operations:
        responses = operation["responses"]
        assert {"ApiKey": []} in operation["security"] and operation["tags"], (path, method)
        assert {"401", "403"} <= set(responses), (path, method)
        assert any(code.startswith("2") and (code == "204" or responses[code].get("content")) for code in responses)
        if "{" in path:
            assert "404" in responses, (path, method)
        if "requestBody" in operation:
            assert set(operation["requestBody"]["content"]) == {"application/json"}
            assert {"400", "415"} <= set(responses), (path, method)
        for code in ("401", "403", "404"):
            if code in responses:
                ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error"
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "detail"]
    filters = {p["name"] for p in schema["paths"]["/api/knowledge/"]["get"]["parameters"]}
    assert {"enabled", "tag", "text", "ordering", "limit", "offset"} <= filters


def test_the_schema_names_the_tenants_server_in_both_modes(api_keys):
    by_path = schema_of(api_client(api_keys["alpha"]))
    assert by_path["servers"] == [{"url": "http://testserver/t/alpha", "description": "this tenant"}]
    assert "/api/knowledge/" in by_path["paths"]  # server + path = /t/alpha/api/knowledge/, which answers
    by_host = schema_of(api_client(api_keys["alpha"]), url="/api/schema/", HTTP_HOST="alpha.test")
    assert by_host["servers"] == [{"url": "http://alpha.test", "description": "this tenant"}]


def test_the_schema_needs_a_key_or_staff(api_keys):
    refused = api_client(None).get("/t/alpha/api/schema/", {"format": "json"})
    assert (refused.status_code, json.loads(refused.content)["code"]) == (401, "not_authenticated")
    assert staff_client("alpha").get("/t/alpha/api/schema/").status_code == 200


# -- the docs pages ---------------------------------------------------------------------------------------


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_the_docs_pages_load_only_local_assets(tenant_a, page):
    staff = staff_client("alpha")
    response = staff.get(f"/t/alpha/api/{page}/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSET.findall(html)
    assert assets and all(asset.startswith("/static/") for asset in assets), assets
    assert "http://" not in html and "https://" not in html  # no CDN, no web fonts
    assert "/t/alpha/api/schema/" in html  # the schema of this tenant, under its prefix
    for asset in assets:
        served = staff.get(asset)
        body = b"".join(served.streaming_content) if served.streaming else served.content
        assert served.status_code == 200 and body, asset


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_the_docs_pages_are_for_staff(api_keys, page):
    anonymous = Client().get(f"/t/alpha/api/{page}/")
    assert anonymous.status_code == 302 and "/t/alpha/admin/login/" in anonymous["Location"]
    assert api_client(api_keys["alpha"]).get(f"/t/alpha/api/{page}/").status_code == 302
