"""The AI provider's base URL under the outbound URL policy (tenants/outbound_urls.py): refused when saved
and when the model client connects, unless ALLOW_PRIVATE_OUTBOUND_URLS is on."""

import pytest
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context

from conversations.ai.llm import LLMError, complete_messages
from conversations.ai.models import AIProvider
from testing.factories import AIProviderFactory

pytestmark = pytest.mark.django_db


def provider(base_url: str) -> AIProvider:
    return AIProvider(base_url=base_url, model="gpt-4o-mini")


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000/v1", "http://10.0.0.5/v1", "http://169.254.169.254/v1",
                                      "http://[::1]:8000/v1", "http://[::ffff:127.0.0.1]/v1", "http://localhost/v1"])
def test_a_private_base_url_is_refused_on_save(private_urls_refused, tenant_a, base_url):
    with schema_context("alpha"), pytest.raises(ValidationError) as refused:
        provider(base_url).full_clean()
    (message,) = refused.value.message_dict["base_url"]
    assert "outbound calls go to public addresses only" in message and "ALLOW_PRIVATE_OUTBOUND_URLS" in message


def test_a_public_base_url_is_accepted(private_urls_refused, tenant_a):
    with schema_context("alpha"):
        provider("https://8.8.8.8/v1").full_clean()  # an IP literal: no network needed


def test_the_setting_allows_a_local_model(settings, tenant_a):
    settings.ALLOW_PRIVATE_OUTBOUND_URLS = True
    with schema_context("alpha"):
        provider("http://127.0.0.1:8090/v1").full_clean()


def test_a_saved_private_url_is_refused_when_the_model_is_called(private_urls_refused, tenant_a):
    """A row saved before the policy (or while it was allowed): the request itself is refused, a clear LLMError."""
    with schema_context("alpha"):
        row = AIProviderFactory(base_url="http://127.0.0.1:9/v1", timeout_seconds=2)
        with pytest.raises(LLMError, match="refused by the outbound URL policy: 127.0.0.1 is a loopback address"):
            complete_messages(row, messages=[{"role": "user", "content": "你好"}])
