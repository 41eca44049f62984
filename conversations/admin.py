"""Tenant admin for WeCom connections and the inbound path (secrets are never shown)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import connection
from django.utils.html import format_html

from conversations.encryption import mask
from conversations.models import InboundMessage, KfCursor, TraceEvent, WeComApp, callback_url
from conversations.services.apps import validate_app_fields
from conversations.services.inbound import requeue_stale_inbound, retry_failed_inbound

SECRET_FIELDS = ("secret", "token", "encoding_aes_key")


class WeComAppForm(forms.ModelForm):
    """Secret inputs start empty; leaving one empty on edit keeps the stored value."""

    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False)
    token = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False)
    encoding_aes_key = forms.CharField(label="EncodingAESKey", required=False,
                                       widget=forms.PasswordInput(render_value=False))
    open_kfids = forms.CharField(required=False, label="open_kfid list",
                                 help_text="微信客服 accounts, one per line (kf only)", widget=forms.Textarea(
                                     attrs={"rows": 3}))

    class Meta:
        model = WeComApp
        fields = ["name", "kind", "corp_id", "agent_id", "open_kfids", *SECRET_FIELDS, "is_enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["open_kfids"] = "\n".join(self.instance.open_kfids or [])
        for name in SECRET_FIELDS:
            current = getattr(self.instance, name) if self.instance.pk else None
            self.fields[name].help_text = f"stored: {mask(current)}; leave empty to keep" if current else "required"

    def clean_open_kfids(self):
        return [line.strip() for line in self.cleaned_data["open_kfids"].splitlines() if line.strip()]

    def clean(self):
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        errors = validate_app_fields(
            kind=cleaned.get("kind", ""), corp_id=cleaned.get("corp_id", ""), agent_id=cleaned.get("agent_id"),
            open_kfids=cleaned.get("open_kfids", []), secret=cleaned.get("secret", ""),
            token=cleaned.get("token", ""), encoding_aes_key=cleaned.get("encoding_aes_key", ""))
        for field, message in errors.items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(WeComApp)
class WeComAppAdmin(admin.ModelAdmin):
    form = WeComAppForm
    list_display = ["name", "kind", "corp_id", "agent_id", "is_enabled", "masked_secret", "callback"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name", "corp_id"]
    readonly_fields = ["callback", "created_at"]
    actions = ["enable", "disable"]

    @admin.display(description="secret")
    def masked_secret(self, obj):
        return mask(obj.secret)

    @admin.display(description="callback URL")
    def callback(self, obj):
        if not obj.pk:
            return "shown after saving"
        return format_html("<code>{}</code>", callback_url(obj, connection.schema_name))

    @admin.action(description="Enable selected apps")
    def enable(self, request, queryset):
        self.message_user(request, f"Enabled {queryset.update(is_enabled=True)} app(s).")

    @admin.action(description="Disable selected apps (their callbacks are refused)")
    def disable(self, request, queryset):
        self.message_user(request, f"Disabled {queryset.update(is_enabled=False)} app(s).")


class TraceEventInline(admin.TabularInline):
    model = TraceEvent
    fields = ["created_at", "stage", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "app", "msg_type", "event", "sender", "short_content", "status", "received_at"]
    list_filter = ["status", "source", "msg_type", "app"]
    search_fields = ["natural_key", "sender", "content", "trace_id"]
    readonly_fields = [f.name for f in InboundMessage._meta.fields]
    inlines = [TraceEventInline]
    actions = ["requeue_pending", "retry_failed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:60]

    @admin.action(description="Re-enqueue pending messages now")
    def requeue_pending(self, request, queryset):
        count = requeue_stale_inbound(older_than_seconds=0)
        self.message_user(request, f"Re-enqueued {count} pending message(s).")

    @admin.action(description="Retry selected failed messages (after fixing the cause)")
    def retry_failed(self, request, queryset):
        count = retry_failed_inbound(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Re-enqueued {count} failed message(s).")


@admin.register(KfCursor)
class KfCursorAdmin(admin.ModelAdmin):
    list_display = ["app", "open_kfid", "cursor", "pulls", "updated_at"]
    readonly_fields = ["app", "open_kfid", "cursor", "pulls", "updated_at"]

    def has_add_permission(self, request):
        return False
