"""The operator's view of 微信客服 in the admin: the account's status (set by WeCom, reset by the
operator) and the customer-facing texts of the desk settings (welcome, closing, non-text reply)."""

import pytest
from django_tenants.utils import schema_context

from conversations.models import AccountStatus, DeskSettings, WeComApp
from conversations.services.kf_accounts import mark_managed_in_client
from testing.admin_forms import desk_settings_form, desk_settings_url
from testing.factories import WeComAppFactory
from testing.vectors import CORP_ID

pytestmark = pytest.mark.django_db

APPS = "/t/alpha/admin/conversations/wecomapp/"


@pytest.fixture
def managed_app(tenant_a) -> WeComApp:
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        mark_managed_in_client(app_id=app.pk, errmsg="kf account is managed in the WeCom client")
        app.refresh_from_db()
        return app


# -- the account's status ------------------------------------------------------------------------


def test_the_account_status_is_shown_in_the_list_and_on_the_app(admin_client, managed_app):
    listing = admin_client.get(APPS)
    page = admin_client.get(f"{APPS}{managed_app.pk}/change/")

    assert listing.status_code == page.status_code == 200
    assert "在企业微信客户端接待（API 不能回复）" in listing.text
    assert "在企业微信客户端接待（API 不能回复）" in page.text
    assert "errcode 95011" in page.text
    assert 'name="account_status"' not in page.text  # shown, never typed in


def test_saving_the_app_form_does_not_change_the_status(admin_client, managed_app):
    form = {"name": "renamed", "kind": "kf", "corp_id": CORP_ID, "agent_id": "", "open_kfids": "\n".join(
        managed_app.open_kfids), "secret": "", "token": "", "encoding_aes_key": "", "is_enabled": "on",
        "account_status": AccountStatus.ACTIVE}

    assert admin_client.post(f"{APPS}{managed_app.pk}/change/", form).status_code == 302

    with schema_context("alpha"):
        managed_app.refresh_from_db()
    assert (managed_app.name, managed_app.account_status) == ("renamed", AccountStatus.MANAGED_IN_CLIENT)


def test_mark_active_resets_the_status(admin_client, managed_app):
    response = admin_client.post(APPS, {"action": "mark_active", "_selected_action": [managed_app.pk]})

    assert response.status_code == 302
    with schema_context("alpha"):
        managed_app.refresh_from_db()
    assert managed_app.account_status == AccountStatus.ACTIVE
    assert managed_app.account_status_detail == "marked active by the operator"


# -- desk settings ---------------------------------------------------------------------------------


def test_the_desk_settings_page_shows_the_customer_facing_texts(admin_client, tenant_a):
    page = admin_client.get(desk_settings_url())

    assert page.status_code == 200
    for field in ("welcome_message", "closing_message", "non_text_policy", "non_text_reply"):
        assert f'name="{field}"' in page.text
    assert "您好，我是智能客服，请问有什么可以帮您？" in page.text  # the zh-hans default


def test_the_desk_settings_save_the_welcome_and_an_empty_one_means_none(admin_client, tenant_a):
    form = desk_settings_form(welcome_message="欢迎光临！", closing_message="   ", non_text_policy="reply")
    assert admin_client.post(desk_settings_url(), form).status_code == 302

    with schema_context("alpha"):
        desk = DeskSettings.current()
    assert (desk.welcome_message, desk.closing_message, desk.non_text_policy) == ("欢迎光临！", "", "reply")


def test_a_non_text_reply_policy_needs_a_reply(admin_client, tenant_a):
    refused = admin_client.post(desk_settings_url(), desk_settings_form(non_text_policy="reply", non_text_reply=""))

    assert refused.status_code == 200
    assert "Needed when non-text messages are answered with a reply." in refused.text
    with schema_context("alpha"):
        assert DeskSettings.current().non_text_policy == "handoff"
