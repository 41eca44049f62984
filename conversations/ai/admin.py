"""Tenant admin of the AI provider: masked API key, live breaker state, reset and test actions; a new
embedding model re-embeds the knowledge base in the background.

Registered on import; conversations/admin.py imports this module.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import connection
from django.utils import timezone
from django.utils.html import format_html

from conversations.ai.breaker import STATE_OPEN, breaker_state
from conversations.ai.embeddings import embedding_model_changed
from conversations.ai.llm import LLMError
from conversations.ai.models import AIProvider
from conversations.ai.services import check_ai_provider, reset_circuit_breaker
from conversations.encryption import mask
from conversations.services.audit import actor_for, record


class AIProviderForm(forms.ModelForm):
    """The key input starts empty; leaving it empty keeps the stored key, "clear" removes it."""

    # Declared to pass assume_scheme: a URL typed without a scheme means https (Django 6's default).
    base_url = forms.URLField(label="base URL", max_length=500, assume_scheme="https",
                              help_text=AIProvider._meta.get_field("base_url").help_text)
    api_key = forms.CharField(label="API key", required=False, strip=True,
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    clear_api_key = forms.BooleanField(label="Remove the stored API key", required=False,
                                       help_text="for endpoints that take no key")

    class Meta:
        model = AIProvider
        fields = ["enabled", "base_url", "model", "embedding_model", "api_key", "clear_api_key", "timeout_seconds",
                  "max_tokens",
                  "temperature", "system_prompt_template", "breaker_fail_max", "breaker_reset_timeout_seconds"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.api_key if self.instance.pk else ""
        self.initial["api_key"] = ""
        self.fields["api_key"].help_text = (
            f"stored: {mask(stored)}; leave empty to keep" if stored else "none stored; sent as a Bearer token"
        )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key") and self.instance.pk:
            cleaned["api_key"] = self.instance.api_key
        return cleaned


@admin.register(AIProvider)
class AIProviderAdmin(admin.ModelAdmin):
    form = AIProviderForm
    list_display = ["__str__", "enabled", "masked_api_key", "circuit_breaker", "updated_at"]
    readonly_fields = ["masked_api_key", "circuit_breaker", "created_at", "updated_at"]
    actions = ["reset_circuit_breaker", "test_provider"]
    fieldsets = [
        (None, {"fields": ["enabled", "base_url", "model", "embedding_model", "masked_api_key", "api_key",
                           "clear_api_key"]}),
        ("Request", {"fields": ["timeout_seconds", "max_tokens", "temperature", "system_prompt_template"]}),
        ("Circuit breaker", {"fields": ["breaker_fail_max", "breaker_reset_timeout_seconds", "circuit_breaker"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        before = AIProvider.objects.filter(pk=obj.pk).values_list("embedding_model", flat=True).first()
        super().save_model(request, obj, form, change)
        if embedding_model_changed(before=before, after=obj.embedding_model):
            self.message_user(request, "The embedding model changed: every knowledge entry is re-embedded in the "
                              "background (progress on the knowledge entries page).")

    def delete_model(self, request, obj):
        before = obj.embedding_model
        super().delete_model(request, obj)
        embedding_model_changed(before=before, after=None)

    def delete_queryset(self, request, queryset):
        before = next(iter(queryset.values_list("embedding_model", flat=True)), None)
        super().delete_queryset(request, queryset)
        embedding_model_changed(before=before, after=None)

    def has_add_permission(self, request):
        # One provider per tenant (also a database constraint).
        return super().has_add_permission(request) and not AIProvider.objects.exists()

    @admin.display(description="API key")
    def masked_api_key(self, obj):
        return mask(obj.api_key if obj and obj.pk else "")

    @admin.display(description="circuit breaker")
    def circuit_breaker(self, obj):
        info = breaker_state(connection.schema_name)
        if info["state"] == "unknown":
            return "unknown (Redis unreachable: calls go to the provider unguarded)"
        detail = f"{info['fail_counter']} consecutive failure(s)"
        if info["opened_at"]:
            opened = timezone.localtime(info["opened_at"]).strftime("%Y-%m-%d %H:%M:%S")
            detail += f"; opened at {opened}"
            if info["state"] == STATE_OPEN and obj is not None:
                left = info["opened_at"].timestamp() + obj.breaker_reset_timeout_seconds - timezone.now().timestamp()
                detail += f"; probe in {left:.0f} s" if left > 0 else "; the next call probes the provider"
        if info["probe_in_flight"]:
            detail += "; probe in flight"
        return format_html("<strong>{}</strong> ({})", info["state"], detail)

    @admin.action(description="Reset the circuit breaker (close it now)")
    def reset_circuit_breaker(self, request, queryset):
        reset_circuit_breaker(schema=connection.schema_name)
        # The breaker lives in Redis: the entry follows the reset it records.
        record(actor=actor_for(request.user), action="ai_provider.reset_breaker",
               detail={"providers": list(queryset.values_list("pk", flat=True))})
        self.message_user(request, "Circuit breaker closed; the next message goes to the provider.")

    @admin.action(description="Test the provider (one call with a sample question)")
    def test_provider(self, request, queryset):
        for provider in queryset:
            try:
                answer = check_ai_provider(provider=provider)
            except LLMError as exc:
                self.message_user(request, f"{provider}: test failed: {type(exc).__name__}: {exc}", messages.ERROR)
                continue
            reply = "handoff marker (cannot answer)" if answer.cannot_answer else repr(answer.text[:300])
            self.message_user(
                request,
                f"{provider}: answered in {answer.latency_ms} ms by {answer.model}: {reply}; usage {answer.usage}",
                messages.SUCCESS,
            )
