"""The WeCom servicers mode setting in the admin: editable on 微信客服 apps, refused on self-built apps."""

import pytest
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from testing.accounts import staff_client
from testing.factories import WeComAppFactory
from testing.vectors import CORP_ID

pytestmark = pytest.mark.django_db

APPS = "/t/alpha/admin/conversations/wecomapp/"


def app_form(app: WeComApp, **changes) -> dict:
    form = {"name": app.name, "kind": app.kind, "corp_id": CORP_ID, "agent_id": app.agent_id or "",
            "open_kfids": "\n".join(app.open_kfids), "secret": "", "token": "", "encoding_aes_key": "",
            "is_enabled": "on"}
    return form | changes


def test_a_kf_app_switches_servicers_mode_on_and_off(tenant_a):
    client = staff_client("alpha")
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
    assert client.post(f"{APPS}{app.pk}/change/", app_form(app, servicers_mode="on")).status_code == 302
    with schema_context("alpha"):
        app.refresh_from_db()
        assert app.servicers_mode and app.answered_in_wecom_client
    assert client.post(f"{APPS}{app.pk}/change/", app_form(app)).status_code == 302  # unchecked: off
    with schema_context("alpha"):
        app.refresh_from_db()
        assert not app.servicers_mode


def test_a_self_built_app_cannot_have_servicers_mode(tenant_a):
    client = staff_client("alpha")
    with schema_context("alpha"):
        app = WeComAppFactory(kind="app", agent_id=4711)
    response = client.post(f"{APPS}{app.pk}/change/", app_form(app, servicers_mode="on"))
    assert response.status_code == 200
    assert "微信客服 accounts only" in response.content.decode()
    with schema_context("alpha"):
        app.refresh_from_db()
        assert not app.servicers_mode and not app.answered_in_wecom_client
