"""Tenant admin for WeCom connections and the inbound path (secrets are never shown)."""

from __future__ import annotations

from pathlib import PurePath

from django import forms
from django.contrib import admin, messages
from django.db import connection, transaction
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin_singleton import SingletonModelAdmin
from conversations.encryption import mask
from conversations.models import (
    AccountStatus,
    Contact,
    Conversation,
    DeskSettings,
    FallbackScript,
    InboundMessage,
    KfCursor,
    Message,
    OutboundMessage,
    WeComApp,
    callback_url,
)
from conversations.selectors import message_trace, outbound_trace
from conversations.services.answer_feedback import feedback_keyword_problems
from conversations.services.apps import validate_app_fields
from conversations.services.audit import actor_for, record
from conversations.services.inactivity import inactivity_problems
from conversations.services.inbound import requeue_stale_inbound, retry_failed_inbound
from conversations.services.kf_accounts import set_account_status
from conversations.services.kf_pull import request_kf_pulls
from conversations.services.menus import items_from_setting, menu_problems, welcome_items
from conversations.services.outbound import resend_dead_letters

SECRET_FIELDS = ("secret", "token", "encoding_aes_key")
EVENT_MESSAGE_MAX_BYTES = 2048  # kf/send_msg_on_event text (docs/WECOM_PROTOCOL.md 4.2)


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
        fields = ["name", "kind", "corp_id", "agent_id", "open_kfids", *SECRET_FIELDS, "is_enabled", "servicers_mode"]

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
        if cleaned.get("servicers_mode") and cleaned.get("kind") != WeComApp.Kind.KF:
            # Only 微信客服 has WeCom servicers and sessions; a self-built app's members are answered by us.
            self.add_error("servicers_mode", "WeCom servicers mode exists for 微信客服 accounts only.")
        return cleaned


@admin.register(WeComApp)
class WeComAppAdmin(admin.ModelAdmin):
    form = WeComAppForm
    list_display = ["name", "kind", "corp_id", "agent_id", "is_enabled", "account_status", "masked_secret",
                    "callback"]
    list_filter = ["kind", "is_enabled", "account_status", "servicers_mode"]
    search_fields = ["name", "corp_id"]
    # Set by WeCom (kf_account_auth_change, errcode 95011), never typed in; "mark active" resets it.
    readonly_fields = ["callback", "account_status", "account_status_detail", "created_at"]
    actions = ["enable", "disable", "mark_active"]

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
        self.message_user(request, f"Enabled {_set_apps_enabled(request, queryset, enabled=True)} app(s).")

    @admin.action(description="Mark selected apps active (after fixing 微信客服 reception or API permission)")
    def mark_active(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            changed = set_account_status(app_ids=ids, status=AccountStatus.ACTIVE,
                                         detail="marked active by the operator")
            record(actor=actor_for(request.user), action="wecom_apps.mark_active",
                   detail={"ids": ids, "changed": changed})
        self.message_user(request, f"Marked {changed} app(s) active.")

    @admin.action(description="Disable selected apps (their callbacks are refused)")
    def disable(self, request, queryset):
        self.message_user(request, f"Disabled {_set_apps_enabled(request, queryset, enabled=False)} app(s).")


def _set_apps_enabled(request, queryset, *, enabled: bool) -> int:
    """Enable or disable apps from the admin, recorded in the audit log (a disabled app refuses its callbacks)."""
    ids = list(queryset.values_list("pk", flat=True))
    with transaction.atomic():
        changed = WeComApp.objects.filter(pk__in=ids).update(is_enabled=enabled)
        record(actor=actor_for(request.user), action="wecom_apps.enable" if enabled else "wecom_apps.disable",
               detail={"ids": ids, "changed": changed})
    return changed


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "app", "msg_type", "event", "sender", "short_content", "status", "received_at"]
    list_filter = ["status", "source", "msg_type", "app"]
    search_fields = ["natural_key", "sender", "content", "trace_id"]
    readonly_fields = ["media_preview", *[f.name for f in InboundMessage._meta.fields]]
    actions = ["requeue_pending", "retry_failed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The message's timeline, callback to delivery (change_form.html shows it below the fields).
        if obj is not None:
            context["trace"] = message_trace(obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:60]

    # The customer's picture, voice, video or file, served by the admin itself (staff of this tenant
    # with view permission), never from a public media URL.
    def get_urls(self):
        serve = self.admin_site.admin_view(self.media_view)
        return [path("<int:pk>/media/", serve, name="conversations_inboundmessage_media"), *super().get_urls()]

    def media_view(self, request, pk: int):
        inbound = InboundMessage.objects.filter(pk=pk).exclude(media="").first()
        if inbound is None or not self.has_view_permission(request, inbound):
            raise Http404("no stored media")
        inline = inbound.media_content_type.startswith("image/") and inbound.media_content_type != "image/svg+xml"
        response = FileResponse(inbound.media.open("rb"), as_attachment=not inline,
                                filename=PurePath(inbound.media.name).name,
                                content_type=inbound.media_content_type or "application/octet-stream")
        response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
        return response

    @admin.display(description="media")
    def media_preview(self, obj):
        if obj.media_error:
            return format_html("not stored: {}", obj.media_error)
        if not obj.media:
            return "-"
        url = reverse("admin:conversations_inboundmessage_media", args=[obj.pk])
        if obj.media_content_type.startswith("image/") and obj.media_content_type != "image/svg+xml":
            return format_html('<a href="{0}" target="_blank"><img src="{0}" alt="{1}" style="max-height:200px"></a>',
                               url, obj.msg_type)
        return format_html('<a href="{}">download {} ({}, {} bytes)</a>', url, obj.msg_type,
                           obj.media_content_type, obj.media_size)

    @admin.action(description="Re-enqueue pending messages now")
    def requeue_pending(self, request, queryset):
        count = requeue_stale_inbound(older_than_seconds=0)
        self.message_user(request, f"Re-enqueued {count} pending message(s).")

    @admin.action(description="Retry selected failed messages (after fixing the cause)")
    def retry_failed(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():  # the retry and its audit entry commit together
            count = retry_failed_inbound(ids=ids)
            record(actor=actor_for(request.user), action="inbound.retry_failed", detail={"ids": ids, "retried": count})
        self.message_user(request, f"Re-enqueued {count} failed message(s).")


@admin.register(KfCursor)
class KfCursorAdmin(admin.ModelAdmin):
    list_display = ["app", "open_kfid", "cursor", "pulls", "updated_at"]
    readonly_fields = ["app", "open_kfid", "cursor", "pulls", "updated_at"]
    actions = ["pull_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Pull selected 微信客服 accounts now (when callbacks were lost)")
    def pull_now(self, request, queryset):
        count = request_kf_pulls(list(queryset.select_related("app")))
        self.message_user(request, f"Requested {count} pull(s); messages appear as the worker stores them.")


class KeywordListField(forms.CharField):
    """A JSON list of strings edited as one keyword per line."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


class MenuItemsField(forms.CharField):
    """Menu items as "id | text" lines, stored as [{"id", "content"}]; WeCom's limits are checked by the form."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(f"{item.id} | {item.content}" for item in items_from_setting(value))
        return value

    def to_python(self, value):
        items = []
        for line in (value or "").splitlines():
            if not line.strip():
                continue
            item_id, separator, content = line.partition("|")
            if not separator:
                raise forms.ValidationError(f"{line.strip()!r}: write each item as \"id | text\".")
            items.append({"id": item_id.strip(), "content": content.strip()})
        return items


class DeskSettingsForm(forms.ModelForm):
    handoff_keywords = KeywordListField(required=False, help_text="one per line")
    feedback_helpful_keywords = KeywordListField(
        required=False, label="Helpful keywords", help_text="one per line; a reply that is exactly one of these "
                                                              "rates the latest answer helpful")
    feedback_unhelpful_keywords = KeywordListField(
        required=False, label="Not helpful keywords", help_text="one per line; a reply that is exactly one of "
                                                                  "these rates the latest answer not helpful")
    welcome_menu = MenuItemsField(
        required=False, label="Welcome menu",
        help_text="微信客服: one item per line, \"id | text\" (e.g. \"kb:12 | 如何退货\" answers knowledge entry 12 "
                  "when clicked; \"human | 转人工客服\" hands off); with items the welcome is sent as a menu")

    class Meta:
        model = DeskSettings
        fields = ["conversation_idle_minutes", "context_turns", "user_rate_limit", "user_rate_window_seconds",
                  "tenant_rate_limit", "tenant_rate_window_seconds", "rate_limit_notice", "handoff_keywords",
                  "handoff_message", "max_consecutive_fallbacks", "knowledge_top_k", "knowledge_min_score",
                  "welcome_message", "closing_message", "non_text_policy", "non_text_reply", "welcome_menu",
                  "handoff_menu_enabled", "answer_feedback", "feedback_prompt", "feedback_helpful_keywords",
                  "feedback_unhelpful_keywords", "feedback_thanks", "mask_sensitive_input",
                  "inactivity_close", "inactivity_warn_minutes", "inactivity_warning", "inactivity_close_minutes"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("knowledge_min_score") is not None and not 0 <= cleaned["knowledge_min_score"] <= 1:
            self.add_error("knowledge_min_score", "Between 0 and 1.")
        for field in ("user_rate_limit", "user_rate_window_seconds", "tenant_rate_limit",
                      "tenant_rate_window_seconds", "context_turns", "conversation_idle_minutes"):
            if cleaned.get(field) == 0:
                self.add_error(field, "Must be at least 1.")
        for field in ("welcome_message", "closing_message"):
            text = (cleaned.get(field) or "").strip()
            cleaned[field] = text  # only spaces would send an empty message: store "no message" instead
            # Sent once with a single-use event code: it cannot be split into parts like answers.
            if len(text.encode()) > EVENT_MESSAGE_MAX_BYTES:
                self.add_error(field, f"At most {EVENT_MESSAGE_MAX_BYTES} bytes (UTF-8): sent as one message.")
        if cleaned.get("non_text_policy") == "reply" and not (cleaned.get("non_text_reply") or "").strip():
            self.add_error("non_text_reply", "Needed when non-text messages are answered with a reply.")
        if cleaned.get("welcome_menu"):
            # Checked as it will be sent (the welcome as head, "转人工客服" added): WeCom would refuse it.
            items = welcome_items(items=items_from_setting(cleaned["welcome_menu"]),
                                  with_human=bool(cleaned.get("handoff_menu_enabled")))
            for problem in menu_problems(head=cleaned.get("welcome_message") or "", items=items):
                self.add_error("welcome_menu", problem)
        for field, problem in feedback_keyword_problems(
                helpful=cleaned.get("feedback_helpful_keywords") or [],
                unhelpful=cleaned.get("feedback_unhelpful_keywords") or []).items():
            self.add_error(field, problem)
        for field, problem in inactivity_problems(
                enabled=bool(cleaned.get("inactivity_close")), warn_minutes=cleaned.get("inactivity_warn_minutes"),
                close_minutes=cleaned.get("inactivity_close_minutes"),
                warning=cleaned.get("inactivity_warning") or "").items():
            self.add_error(field, problem)
        return cleaned


@admin.register(DeskSettings)
class DeskSettingsAdmin(SingletonModelAdmin):
    form = DeskSettingsForm
    fieldsets = [
        ("Conversations", {"fields": ["conversation_idle_minutes", "context_turns"]}),
        ("Rate limits", {"fields": ["user_rate_limit", "user_rate_window_seconds", "tenant_rate_limit",
                                    "tenant_rate_window_seconds", "rate_limit_notice"]}),
        ("Handoff", {"fields": ["handoff_keywords", "handoff_message", "max_consecutive_fallbacks"]}),
        ("Customer messages", {"fields": ["welcome_message", "closing_message", "non_text_policy",
                                          "non_text_reply"]}),
        ("Menus (微信客服)", {"fields": ["welcome_menu", "handoff_menu_enabled"]}),
        ("Knowledge", {"fields": ["knowledge_top_k", "knowledge_min_score"]}),
        ("Ratings of answers", {"fields": ["answer_feedback", "feedback_prompt", "feedback_helpful_keywords",
                                           "feedback_unhelpful_keywords", "feedback_thanks"]}),
        ("Sensitive words", {"fields": ["mask_sensitive_input"]}),
        ("Inactivity auto-close", {"fields": ["inactivity_close", "inactivity_warn_minutes", "inactivity_warning",
                                              "inactivity_close_minutes"]}),
    ]



class FallbackScriptForm(forms.ModelForm):
    keywords = KeywordListField(required=False, help_text="one per line; matched anywhere in the message")

    class Meta:
        model = FallbackScript
        fields = ["name", "keywords", "text", "is_default", "enabled"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("is_default") and FallbackScript.objects.filter(is_default=True).exclude(
                pk=self.instance.pk).exists():
            self.add_error("is_default", "Another script is already the default.")
        if not cleaned.get("is_default") and not cleaned.get("keywords"):
            self.add_error("keywords", "A script that is not the default needs at least one keyword.")
        return cleaned


@admin.register(FallbackScript)
class FallbackScriptAdmin(admin.ModelAdmin):
    form = FallbackScriptForm
    list_display = ["name", "is_default", "enabled", "used_count", "short_text"]
    list_filter = ["enabled", "is_default"]

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text[:60]


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "author", "text"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "contact", "state", "consecutive_fallbacks", "started_at", "last_message_at"]
    list_filter = ["state"]
    search_fields = ["contact__external_id", "contact__display_name"]
    readonly_fields = ["contact", "state", "consecutive_fallbacks", "started_at", "last_message_at", "closed_at"]
    inlines = [MessageInline]

    def has_add_permission(self, request):
        return False


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["external_id", "display_name", "app", "open_kfid", "created_at"]
    search_fields = ["external_id", "display_name"]
    readonly_fields = ["app", "external_id", "open_kfid", "created_at"]


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    """The outbound ledger; filter by status "dead letter" to see and re-send dead letters."""

    list_display = ["id", "contact", "author", "part", "status", "attempts", "last_errcode", "last_error",
                    "created_at", "sent_at"]
    list_filter = ["status", "author", "last_errcode"]
    search_fields = ["contact__external_id", "content", "idempotency_key", "trace_id"]
    readonly_fields = ["message_trace", *[f.name for f in OutboundMessage._meta.fields]]
    actions = ["resend"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The trace this row's delivery belongs to: its customer message's, or its own (an agent's reply).
        if obj is not None:
            context["trace"] = outbound_trace(obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description=_("trace of the message it answers"))
    def message_trace(self, obj):
        if not obj.inbound_id:
            return _("none: it answers no customer message (its own trace is below)")
        url = reverse("admin:conversations_inboundmessage_change", args=[obj.inbound_id]) + "#trace"
        return format_html('<a href="{}">{} #{}</a>', url, _("inbound message"), obj.inbound_id)

    @admin.action(description="Re-send selected dead letters")
    def resend(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():  # the re-send and its audit entry commit together
            resent, refused = resend_dead_letters(ids=ids)
            record(actor=actor_for(request.user), action="dead_letters.resend",
                   detail={"ids": ids, "resent": resent, "refused": refused})
        if resent:
            self.message_user(request, f"Re-sending {resent} dead letter(s).")
        if refused:
            self.message_user(request, "Refused: " + "; ".join(refused[:20]), messages.WARNING)


import conversations.admin_answer_ratings  # noqa: E402, F401  (registers AnswerFeedbackAdmin)
import conversations.admin_api_keys  # noqa: E402, F401  (registers ApiKeyAdmin)
import conversations.admin_knowledge_gaps  # noqa: E402, F401  (registers KnowledgeGapAdmin)
import conversations.admin_sensitive_words  # noqa: E402, F401  (registers SensitiveWordAdmin)
import conversations.admin_webhooks  # noqa: E402, F401  (registers WebhookEndpointAdmin, WebhookDeliveryAdmin)
import conversations.ai.admin  # noqa: E402, F401  (registers AIProviderAdmin)
import conversations.audit.admin  # noqa: E402, F401  (registers AuditLogEntryAdmin)
