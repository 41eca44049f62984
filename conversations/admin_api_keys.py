"""Tenant admin of the REST API keys: create one (shown once), choose its scopes, expiry and rate, revoke it.

Every create, change and revoke goes through conversations.services.api_keys, which records it in the audit
log with the operator's name. Keys are revoked, not deleted, so the log's entries keep meaning something.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from conversations.models import ApiKey
from conversations.scopes import scope_choices
from conversations.services.api_keys import create_api_key, revoke_api_keys, update_api_key
from conversations.services.audit import actor_for


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("scopes"), choices=scope_choices, widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("read: GET; write: every other method (write includes read)"))

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expires_at", "throttle_per_minute", "is_active"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "is_active", "expires_at", "last_used_at", "throttle_per_minute",
                    "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        fields = ["name", "scopes", "expires_at", "throttle_per_minute"]
        return fields if obj is None else ["prefix", *fields, "is_active", "created_at", "last_used_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the audit log keeps naming the key

    @admin.display(description=gettext_lazy("scopes"))
    def scope_list(self, obj):
        return ", ".join(obj.scopes) or "—"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            update_api_key(api_key=obj, actor=actor_for(request.user), name=data["name"], scopes=data["scopes"],
                           expires_at=data["expires_at"], throttle_per_minute=data["throttle_per_minute"],
                           is_active=data["is_active"])
            return
        api_key, plaintext = create_api_key(name=data["name"], scopes=data["scopes"], expires_at=data["expires_at"],
                                            throttle_per_minute=data["throttle_per_minute"],
                                            actor=actor_for(request.user))
        obj.pk, obj.prefix = api_key.pk, api_key.prefix
        self.message_user(request, _("API key created. Copy it now, it will not be shown again: %(key)s")
                          % {"key": plaintext}, messages.WARNING)

    @admin.action(description=gettext_lazy("Revoke selected keys"))
    def revoke(self, request, queryset):
        revoked = revoke_api_keys(ids=list(queryset.values_list("pk", flat=True)), actor=actor_for(request.user))
        self.message_user(request, _("Revoked %(count)d key(s).") % {"count": revoked})
