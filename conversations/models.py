"""WeCom connections of a tenant and everything that arrives through them. Tenant schema."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

from conversations.encryption import EncryptedTextField


def new_callback_id() -> str:
    return secrets.token_urlsafe(12)


class WeComApp(models.Model):
    """A WeCom self-built app (自建应用) or a 微信客服 account set, with its callback credentials."""

    class Kind(models.TextChoices):
        APP = "app", "self-built app"
        KF = "kf", "微信客服"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    corp_id = models.CharField("CorpID", max_length=64)
    agent_id = models.BigIntegerField("AgentID", null=True, blank=True, help_text="self-built apps only")
    open_kfids = models.JSONField(
        "open_kfid list", default=list, blank=True, help_text="微信客服 accounts served (kf only)"
    )
    secret = EncryptedTextField(help_text="app secret or 微信客服 secret; encrypted at rest")
    token = EncryptedTextField(help_text="callback Token; encrypted at rest")
    encoding_aes_key = EncryptedTextField("EncodingAESKey", help_text="43 characters; encrypted at rest")
    # Public, unguessable part of the callback URL (the pk would make apps enumerable).
    callback_id = models.CharField(max_length=32, unique=True, default=new_callback_id, editable=False)
    is_enabled = models.BooleanField("enabled", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "WeCom app"
        constraints = [
            models.UniqueConstraint(
                fields=["corp_id", "agent_id"], condition=models.Q(kind="app"), name="unique_corp_agent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()} {self.corp_id})"


class InboundMessage(models.Model):
    """Everything WeCom told us, stored once under its natural key before we acknowledge it."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for processing"
        PROCESSED = "processed", "processed"
        UNSUPPORTED = "unsupported", "stored, type not processed"
        RECORDED = "recorded", "recorded only (kf event or human servicer message)"
        FAILED = "failed", "failed permanently (see trace); re-enqueue after fixing the cause"

    class Source(models.TextChoices):
        CALLBACK = "callback", "callback"
        KF_PULL = "kf_pull", "微信客服 pull"

    app = models.ForeignKey(WeComApp, on_delete=models.PROTECT, related_name="inbound_messages")
    # "msg:<MsgId>", "event:<From>:<CreateTime>:<Event>" or "kf:<msgid>" (DESIGN.md, invariant 2).
    natural_key = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)
    msg_type = models.CharField(max_length=32)
    event = models.CharField(max_length=64, blank=True)
    sender = models.CharField(max_length=128, blank=True, help_text="member UserID or external_userid")
    open_kfid = models.CharField(max_length=64, blank=True)
    origin = models.PositiveSmallIntegerField(null=True, blank=True, help_text="kf: 3 customer, 4 event, 5 servicer")
    content = models.TextField(blank=True)
    payload = models.JSONField(default=dict)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="CreateTime / send_time from WeCom")
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    enqueue_count = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "natural_key"], name="unique_inbound_natural_key"),
        ]
        indexes = [
            models.Index(fields=["status", "enqueued_at"], name="inbound_sweep",
                         condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.msg_type} {self.natural_key}"


class KfCursor(models.Model):
    """Where the next kf/sync_msg pull of one 微信客服 account starts; saved with each page."""

    app = models.ForeignKey(WeComApp, on_delete=models.CASCADE, related_name="kf_cursors")
    open_kfid = models.CharField(max_length=64)
    cursor = models.CharField(max_length=128, blank=True)
    pulls = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "open_kfid"], name="unique_kf_cursor")]
        verbose_name = "微信客服 cursor"

    def __str__(self) -> str:
        return f"{self.open_kfid} @ {self.cursor or '(start)'}"


class TraceEvent(models.Model):
    """One stage in the life of an inbound message (received, duplicate, enqueued, pulled, ...)."""

    trace_id = models.UUIDField(db_index=True)
    inbound = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.CASCADE, related_name="trace_events"
    )
    stage = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.trace_id} {self.stage}"


def callback_path(app: WeComApp, tenant_slug: str) -> str:
    return f"/t/{tenant_slug}/wecom/callback/{app.callback_id}/"


def callback_url(app: WeComApp, tenant_slug: str) -> str:
    return settings.PUBLIC_BASE_URL + callback_path(app, tenant_slug)
