"""Tenant admin of webhooks out: endpoints (created with a generated signing secret, shown once; rotate it,
enable, disable, send a test event) and their deliveries (filter by status, re-send dead ones).

Every write goes through conversations/services/webhooks.py; the operator's actions are in the audit log.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from conversations.encryption import mask
from conversations.services.audit import actor_for, record
from conversations.services.webhooks import (
    WebhookRefused,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    resend_dead_deliveries,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from conversations.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=gettext_lazy("URL"), max_length=500, assume_scheme="https",
                         help_text=gettext_lazy("http(s); public addresses only"))
    events = forms.MultipleChoiceField(label=gettext_lazy("events"), choices=EventType.choices,
                                       widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "events", "is_active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "event_list", "is_active", "disabled_reason", "consecutive_failures",
                    "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    actions = ["rotate_secrets", "enable", "disable", "send_test_event"]

    def get_fields(self, request, obj=None):
        fields = ["url", "description", "events", "is_active"]
        if obj is None:
            return fields
        return [*fields, "masked_secret", "disabled_reason", "disabled_at", "consecutive_failures",
                "consecutive_dead", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["masked_secret", "disabled_reason", "disabled_at", "consecutive_failures", "consecutive_dead",
                "created_at"]

    @admin.display(description=gettext_lazy("events"))
    def event_list(self, obj):
        return ", ".join(obj.events) or "—"

    @admin.display(description=gettext_lazy("signing secret"))
    def masked_secret(self, obj):
        return format_html("{} <br><small>{}</small>", mask(obj.secret),
                           _("Shown once when created or rotated; use the action “Rotate the signing secret”."))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        with transaction.atomic():
            if change:
                original = WebhookEndpoint.objects.get(pk=obj.pk)
                is_active = obj.is_active
                obj.is_active = original.is_active  # update_endpoint sees the change and records why
                update_endpoint(endpoint=obj, url=data["url"], description=data["description"], events=data["events"],
                                is_active=is_active)
                action = "webhook_endpoint.update"
            else:
                obj.events = sorted(set(data["events"]))
                obj.save()
                action = "webhook_endpoint.create"
            record(actor=actor_for(request.user), action=action, target=f"webhookendpoint:{obj.pk}",
                   detail={"url": obj.url, "events": obj.events, "is_active": obj.is_active})
        if not change:
            self.message_user(request, _("Webhook endpoint created. Its signing secret, shown only now: %(secret)s")
                              % {"secret": obj.secret}, messages.WARNING)

    def delete_model(self, request, obj):
        with transaction.atomic():
            record(actor=actor_for(request.user), action="webhook_endpoint.delete", target=f"webhookendpoint:{obj.pk}",
                   detail={"url": obj.url})
            delete_endpoint(endpoint=obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            self.delete_model(request, endpoint)

    @admin.action(description=gettext_lazy("Rotate the signing secret"))
    def rotate_secrets(self, request, queryset):
        for endpoint in queryset:
            with transaction.atomic():
                secret = rotate_secret(endpoint=endpoint)
                record(actor=actor_for(request.user), action="webhook_endpoint.rotate_secret",
                       target=f"webhookendpoint:{endpoint.pk}")
            self.message_user(request, _("New signing secret of %(endpoint)s, shown only now: %(secret)s")
                              % {"endpoint": endpoint, "secret": secret}, messages.WARNING)

    @admin.action(description=gettext_lazy("Enable selected endpoints"))
    def enable(self, request, queryset):
        for endpoint in queryset.filter(is_active=False):
            with transaction.atomic():
                enable_endpoint(endpoint=endpoint)
                record(actor=actor_for(request.user), action="webhook_endpoint.enable",
                       target=f"webhookendpoint:{endpoint.pk}")
        self.message_user(request, _("Enabled. Re-send their dead deliveries from the deliveries list."))

    @admin.action(description=gettext_lazy("Disable selected endpoints"))
    def disable(self, request, queryset):
        for endpoint in queryset.filter(is_active=True):
            with transaction.atomic():
                disable_endpoint(endpoint=endpoint, reason=_("disabled by %(user)s") % {
                    "user": request.user.get_username()})
                record(actor=actor_for(request.user), action="webhook_endpoint.disable",
                       target=f"webhookendpoint:{endpoint.pk}")
        self.message_user(request, _("Disabled."))

    @admin.action(description=gettext_lazy("Send a test event"))
    def send_test_event(self, request, queryset):
        for endpoint in queryset:
            try:
                event = send_test_event(endpoint=endpoint)
            except WebhookRefused as exc:
                self.message_user(request, f"{endpoint}: {exc}", messages.WARNING)
                continue
            self.message_user(request, _("Test event %(event)s queued for %(endpoint)s; see it in the deliveries.")
                              % {"event": event.event_id, "endpoint": endpoint})


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Each event's delivery to each endpoint; filter by status "dead letter" to re-send."""

    list_display = ["id", "endpoint", "event_type", "status", "attempts", "last_status_code", "last_error",
                    "next_attempt_at", "created_at", "delivered_at"]
    list_filter = ["status", "endpoint", "event__type"]
    search_fields = ["event__event_id", "last_error"]
    list_select_related = ["endpoint", "event"]
    actions = ["resend"]
    fields = ["endpoint", "event_type", "event_id", "status", "attempts", "next_attempt_at", "last_status_code",
              "last_error", "created_at", "delivered_at", "payload"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("event"), ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description=gettext_lazy("event id"))
    def event_id(self, obj):
        return obj.event.event_id

    @admin.display(description=gettext_lazy("payload"))
    def payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.event.payload, ensure_ascii=False, indent=2))

    @admin.action(description=gettext_lazy("Re-send selected dead deliveries"))
    def resend(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():  # the re-send and its audit entry commit together
            resent, refused = resend_dead_deliveries(ids=ids)
            record(actor=actor_for(request.user), action="webhook_deliveries.resend",
                   detail={"ids": ids, "resent": resent, "refused": refused})
        if resent:
            self.message_user(request, _("Re-sending %(count)d delivery(ies).") % {"count": resent})
        if refused:
            self.message_user(request, _("Refused: %(reasons)s") % {"reasons": "; ".join(refused[:20])},
                              messages.WARNING)
