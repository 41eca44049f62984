"""The tenant's AI provider: an OpenAI-compatible chat-completions endpoint and its breaker thresholds.

Tenant schema, one row per tenant. Lives in the `conversations` app (imported from
conversations/models.py), so its table is `conversations_aiprovider`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from conversations.ai.prompt import DEFAULT_SYSTEM_PROMPT, template_problems
from conversations.encryption import EncryptedTextField
from tenants.outbound_urls import OutboundURLRefused, check_outbound_url


def default_system_prompt() -> str:
    # A callable, so that improving the default prompt needs no migration.
    return DEFAULT_SYSTEM_PROMPT


class AIProvider(models.Model):
    """Where a tenant's questions go: base URL + model, the key (encrypted), limits and the prompt."""

    enabled = models.BooleanField(default=True, help_text="when off, the desk answers from knowledge and scripts only")
    base_url = models.URLField(
        "base URL", max_length=500,
        help_text="OpenAI-compatible API root, e.g. https://api.openai.com/v1; we POST {base URL}/chat/completions",
    )
    model = models.CharField(max_length=100, help_text="model name sent with every request, e.g. gpt-4o-mini")
    embedding_model = models.CharField(
        max_length=100, blank=True,
        help_text="blank: the knowledge base uses the built-in in-process embedding model; a name, e.g. "
        "text-embedding-3-small: we POST {base URL}/embeddings with it. Changing it re-embeds every entry",
    )
    api_key = EncryptedTextField(
        "API key", blank=True, help_text="sent as 'Authorization: Bearer ...'; encrypted at rest, never shown"
    )
    timeout_seconds = models.FloatField(
        default=15.0, validators=[MinValueValidator(0.1), MaxValueValidator(300)],
        help_text="whole request, connection to last byte; a timeout counts as a failure for the breaker",
    )
    max_tokens = models.PositiveIntegerField(default=512, validators=[MinValueValidator(1), MaxValueValidator(32768)])
    temperature = models.FloatField(default=0.3, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    system_prompt_template = models.TextField(
        default=default_system_prompt,
        help_text="placeholders: {tenant_name}, {knowledge} (the retrieved entries, required) and "
        "{handoff_marker} (what the model replies when the knowledge has no answer, required)",
    )
    breaker_fail_max = models.PositiveSmallIntegerField(
        "breaker: failures to open", default=5, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="consecutive failures or timeouts after which calls fail fast (fallback scripts answer)",
    )
    breaker_reset_timeout_seconds = models.FloatField(
        "breaker: recovery time (s)", default=30.0, validators=[MinValueValidator(0.1), MaxValueValidator(3600)],
        help_text="how long the breaker stays open before one probe call may try the provider again",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI provider"
        constraints = [
            # One provider per tenant: a unique index on a constant admits a single row.
            models.UniqueConstraint(models.Value(1), name="one_ai_provider_per_tenant",
                                    violation_error_message="This tenant already has an AI provider."),
        ]

    def __str__(self) -> str:
        return f"{self.model} at {urlsplit(self.base_url).netloc or self.base_url}"

    @property
    def chat_completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        self.base_url = (self.base_url or "").strip().rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https"):
            errors.setdefault("base_url", []).append("Use an http:// or https:// URL.")
        if parts.username or parts.password:
            errors.setdefault("base_url", []).append("Put the key in the API key field, not in the URL.")
        if parts.query or parts.fragment:
            errors.setdefault("base_url", []).append("The base URL takes no query string or fragment.")
        if parts.path.endswith("/chat/completions"):
            errors.setdefault("base_url", []).append("Give the API root (…/v1); /chat/completions is added.")
        if "base_url" not in errors:
            try:  # SSRF: not a private, loopback or link-local address (unless the platform allows it)
                check_outbound_url(self.base_url)
            except OutboundURLRefused as exc:
                errors["base_url"] = [str(exc)]
        self.model = (self.model or "").strip()
        if not self.model:
            errors.setdefault("model", []).append("Name the model to use.")
        problems = template_problems(self.system_prompt_template or "")
        if problems:
            errors["system_prompt_template"] = problems
        if errors:
            raise ValidationError(errors)
