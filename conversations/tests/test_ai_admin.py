"""The AI provider in the tenant admin: masked key, breaker state, reset and test actions, one per tenant."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from conversations.ai.breaker import breaker_state, call_with_breaker
from conversations.ai.llm import LLMBadResponse, complete
from conversations.ai.models import AIProvider
from conversations.encryption import mask
from testing.accounts import STAFF_PASSWORD
from testing.factories import AIProviderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_breakers")]

KEY = "sk-alpha-admin-0123456789"
URL = "/t/alpha/admin/conversations/aiprovider/"


def login(tenant) -> Client:
    with schema_context(tenant.slug):
        get_user_model().objects.filter(username=tenant.staff_email).update(is_superuser=True)
    client = Client()
    admin = f"/t/{tenant.slug}/admin/"
    response = client.post(f"{admin}login/", {"username": tenant.staff_email, "password": STAFF_PASSWORD,
                                               "next": admin})
    assert response.status_code == 302
    return client


@pytest.fixture
def admin_client(tenant_a):
    return login(tenant_a)


@pytest.fixture
def provider(tenant_a, fake_model) -> AIProvider:
    with schema_context("alpha"):
        return AIProviderFactory(base_url=fake_model.model_base_url, api_key=KEY, breaker_fail_max=2,
                                 breaker_reset_timeout_seconds=60)


def form_data(provider, **overrides) -> dict:
    data = {"enabled": "on", "base_url": provider.base_url, "model": provider.model, "api_key": "",
            "timeout_seconds": "5", "max_tokens": "512", "temperature": "0.3",
            "system_prompt_template": provider.system_prompt_template, "breaker_fail_max": "2",
            "breaker_reset_timeout_seconds": "60"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def open_alpha_breaker(fake_model, provider):
    fake_model.model_configure(available=False)
    with schema_context("alpha"):
        for _ in range(provider.breaker_fail_max):
            with pytest.raises(LLMBadResponse):
                call_with_breaker(provider, complete, provider, context=[], question="q", knowledge=[])
    fake_model.model_configure(available=True)
    assert breaker_state("alpha")["state"] == "open"


def test_the_page_shows_the_masked_key_and_the_breaker_state(admin_client, provider, fake_model):
    open_alpha_breaker(fake_model, provider)
    page = admin_client.get(f"{URL}{provider.pk}/change/")
    assert page.status_code == 200
    assert KEY not in page.text
    assert mask(KEY) in page.text  # ••••••••6789
    assert "<strong>open</strong> (2 consecutive failure(s); opened at" in page.text
    assert "probe in 60 s" in page.text or "probe in 59 s" in page.text

    listing = admin_client.get(URL)
    assert KEY not in listing.text and mask(KEY) in listing.text and "<strong>open</strong>" in listing.text


def test_another_tenant_sees_neither_the_provider_nor_the_state(tenant_b, provider, fake_model):
    open_alpha_breaker(fake_model, provider)
    beta = login(tenant_b)
    listing = beta.get("/t/beta/admin/conversations/aiprovider/")
    assert listing.status_code == 200 and "sandbox-chat" not in listing.text
    assert beta.get(f"/t/beta/admin/conversations/aiprovider/{provider.pk}/change/").status_code == 302  # not found
    page = beta.get("/t/beta/admin/conversations/aiprovider/add/")
    assert "<strong>closed</strong> (0 consecutive failure(s))" in page.text


def test_an_empty_key_input_keeps_the_key_and_clear_removes_it(admin_client, provider):
    url = f"{URL}{provider.pk}/change/"
    assert admin_client.post(url, form_data(provider, model="gpt-4o-mini")).status_code == 302
    with schema_context("alpha"):
        provider.refresh_from_db()
    assert (provider.model, provider.api_key) == ("gpt-4o-mini", KEY)

    assert admin_client.post(url, form_data(provider, api_key="sk-new-key-000000000000")).status_code == 302
    with schema_context("alpha"):
        provider.refresh_from_db()
    assert provider.api_key == "sk-new-key-000000000000"

    assert admin_client.post(url, form_data(provider, clear_api_key="on")).status_code == 302
    with schema_context("alpha"):
        provider.refresh_from_db()
    assert provider.api_key == ""


def test_invalid_settings_are_refused_and_nothing_changes(admin_client, provider):
    url = f"{URL}{provider.pk}/change/"
    response = admin_client.post(url, form_data(provider, system_prompt_template="no placeholders",
                                                breaker_fail_max="0"))
    assert response.status_code == 200
    errors = response.context_data["adminform"].form.errors
    assert set(errors) == {"system_prompt_template", "breaker_fail_max"}
    assert "{knowledge}" in response.text  # our message; the validator's is translated (zh-hans admin)
    with schema_context("alpha"):
        provider.refresh_from_db()
    assert provider.breaker_fail_max == 2 and "{knowledge}" in provider.system_prompt_template


def test_reset_action_closes_the_breaker(admin_client, provider, fake_model):
    open_alpha_breaker(fake_model, provider)
    response = admin_client.post(URL, {"action": "reset_circuit_breaker", "_selected_action": [provider.pk]},
                                 follow=True)
    assert "Circuit breaker closed" in response.text
    assert breaker_state("alpha")["state"] == "closed"


def test_test_action_shows_the_answer_or_the_error(admin_client, provider, fake_model):
    fake_model.model_configure(api_keys=[KEY])
    data = {"action": "test_provider", "_selected_action": [provider.pk]}
    ok = admin_client.post(URL, data, follow=True)
    assert "根据资料：连接测试：每天 9:00–18:00 在线。" in ok.text and "answered in" in ok.text

    fake_model.model_configure(available=False)
    failed = admin_client.post(URL, data, follow=True)
    assert "test failed: LLMBadResponse: HTTP 503" in failed.text
    assert KEY not in ok.text + failed.text
    assert breaker_state("alpha")["fail_counter"] == 0  # testing does not move the breaker


def test_adding_a_second_provider_is_refused(admin_client, provider):
    assert admin_client.get(f"{URL}add/").status_code == 403


def test_adding_the_first_provider(admin_client, fake_model):
    data = form_data(AIProviderFactory.build(base_url=fake_model.model_base_url), api_key=KEY)
    assert admin_client.post(f"{URL}add/", data).status_code == 302
    with schema_context("alpha"):
        assert AIProvider.objects.get().api_key == KEY
