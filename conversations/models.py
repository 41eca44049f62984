"""WeCom connections of a tenant and everything that arrives through them. Tenant schema."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from conversations.encryption import EncryptedTextField
from conversations.scopes import API_KEY_DEFAULT_RATE_PER_MINUTE, API_KEY_MAX_RATE_PER_MINUTE, validate_scopes
from conversations.vocabulary import Stage
from tenants.versioned_cache import TrackedQuerySet, VersionedCache


def new_callback_id() -> str:
    return secrets.token_urlsafe(12)


class AccountStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    MANAGED_IN_CLIENT = "managed_in_client", _("managed in the WeCom client (API may not reply)")
    UNAUTHORIZED = "unauthorized", _("API permission withdrawn")


def media_path(instance, filename: str) -> str:
    """Media files live under their tenant's schema: a file path never crosses tenants."""
    suffix = Path(filename).suffix.lower()[:10]
    return f"{connection.schema_name}/media/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


# Apps by callback id, kept per process until one of the tenant's apps changes (conversations/services/apps.py).
APP_COPIES = VersionedCache("wecom-apps")


class WeComAppQuerySet(TrackedQuerySet):
    copies = APP_COPIES


class WeComApp(models.Model):
    """A WeCom self-built app (自建应用) or a 微信客服 account set, with its callback credentials."""

    class Kind(models.TextChoices):
        APP = "app", _("self-built app")
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
    # 微信客服: what WeCom last said about our right to serve the accounts (kf_account_auth_change,
    # errcode 95011 "managed in the WeCom client"); shown to the operator in the admin.
    account_status = models.CharField(max_length=20, choices=AccountStatus.choices, default=AccountStatus.ACTIVE)
    account_status_detail = models.CharField(max_length=300, blank=True)
    # 微信客服 only (docs/KF_SESSIONS.md): the company's staff answer in the WeCom client, so a handoff
    # moves the WeCom session to its pool (2) or to a servicer (3) and the agent screens only watch.
    servicers_mode = models.BooleanField(
        "WeCom servicers mode", default=False,
        help_text="微信客服 only: handed-off customers are answered by WeCom servicers in the WeCom client; "
                  "the agent screens show those conversations read-only")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WeComAppQuerySet.as_manager()

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

    @property
    def answered_in_wecom_client(self) -> bool:
        """微信客服 in WeCom servicers mode: humans answer in the WeCom client, not on our screens."""
        return self.kind == self.Kind.KF and self.servicers_mode


APP_COPIES.track(WeComApp)  # saves and deletes; bulk changes through WeComAppQuerySet


class InboundMessage(models.Model):
    """Everything WeCom told us, stored once under its natural key before we acknowledge it."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for processing"
        PROCESSED = "processed", "processed"
        UNSUPPORTED = "unsupported", "stored, type not processed"
        RECORDED = "recorded", "recorded only (kf event or human servicer message)"
        RATE_LIMITED = "rate_limited", "over the customer's rate limit (not answered)"
        FAILED = "failed", "failed permanently (see trace); re-enqueue after fixing the cause"

    class Source(models.TextChoices):
        CALLBACK = "callback", "callback"
        KF_PULL = "kf_pull", "微信客服 pull"

    app = models.ForeignKey(WeComApp, on_delete=models.PROTECT, related_name="inbound_messages")
    # "msg:<MsgId>", "event:<From>:<CreateTime>:<Event>" or "kf:<msgid>" (docs/DESIGN_RULES.md, invariant 2).
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
    # Pictures, voice, video and files: downloaded from WeCom (media/get) into storage by a job.
    media = models.FileField(upload_to=media_path, blank=True, max_length=200)
    media_content_type = models.CharField(max_length=100, blank=True)
    media_size = models.PositiveIntegerField(null=True, blank=True)
    media_error = models.CharField(max_length=300, blank=True, help_text="why the media could not be stored")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "natural_key"], name="unique_inbound_natural_key"),
        ]
        indexes = [
            models.Index(fields=["status", "enqueued_at"], name="inbound_sweep",
                         condition=models.Q(status="pending")),
            # The operations page's charts read the last 24 hours / 7 days; without it they scan the table.
            models.Index(fields=["received_at"], name="inbound_received_at"),
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
    """One stage in the life of an inbound message, from its callback to the delivery of its replies
    (received, duplicate, enqueued, ..., send_attempt, sent, dead, resend); read with
    conversations.selectors.message_trace.

    `inbound` is set on every event of a message, delivery events included (through
    OutboundMessage.inbound). Only deliveries with no customer message behind them (an agent's reply)
    have events without it, under the ledger row's own trace id.
    """

    trace_id = models.UUIDField(db_index=True)
    inbound = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.CASCADE, related_name="trace_events"
    )
    stage = models.CharField(max_length=32, choices=Stage.choices)
    detail = models.JSONField(default=dict, blank=True)
    # When the stage happened (set by services.tracing.trace_event), not when its row was inserted:
    # a round saves its events together at the end, and the timeline's durations need the real moments.
    created_at = models.DateTimeField(default=timezone.now)
    # (A distributed-tracing id, e.g. OpenTelemetry's, would be stored beside `trace_id` here.)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.trace_id} {self.stage}"


def callback_path(app: WeComApp, tenant_slug: str) -> str:
    return f"/t/{tenant_slug}/wecom/callback/{app.callback_id}/"


def callback_url(app: WeComApp, tenant_slug: str) -> str:
    return settings.PUBLIC_BASE_URL + callback_path(app, tenant_slug)


def default_handoff_keywords() -> list[str]:
    return ["人工", "转人工", "真人", "人工客服", "human agent"]


def default_helpful_keywords() -> list[str]:
    return ["有用", "有帮助", "👍", "满意"]


def default_unhelpful_keywords() -> list[str]:
    return ["没用", "没帮助", "👎", "不满意"]


class DeskSettings(models.Model):
    """The tenant's answering policy (one row per tenant schema; `DeskSettings.current()`)."""

    conversation_idle_minutes = models.PositiveIntegerField(
        default=30, help_text="a bot conversation idle this long is closed; the next message starts afresh")
    context_turns = models.PositiveSmallIntegerField(
        default=10, help_text="recent messages of the conversation sent to the AI as context")
    user_rate_limit = models.PositiveIntegerField(default=20, help_text="messages per window per customer")
    user_rate_window_seconds = models.PositiveIntegerField(default=60)
    tenant_rate_limit = models.PositiveIntegerField(default=3000, help_text="messages per window, whole tenant")
    tenant_rate_window_seconds = models.PositiveIntegerField(default=60)
    rate_limit_notice = models.CharField(max_length=500, default="您的消息太频繁了，请稍后再试。")
    welcome_message = models.CharField(
        max_length=500, blank=True, default="您好，我是智能客服，请问有什么可以帮您？",
        help_text="微信客服: sent when a customer enters the session (empty: no welcome)")
    closing_message = models.CharField(
        max_length=500, blank=True, default="本次服务已结束，感谢您的咨询。",
        help_text="sent when an agent closes the conversation (empty: nothing)")
    welcome_menu = models.JSONField(
        default=list, blank=True,
        help_text="微信客服: items [{id, content}] make the welcome a menu (msgmenu) headed by the welcome message")
    handoff_menu_enabled = models.BooleanField(
        default=True, help_text="menus we send (the welcome menu, the likely questions) end with \"转人工客服\"")
    non_text_policy = models.CharField(
        max_length=10, choices=[("handoff", "hand off to a human"), ("reply", "answer with the reply below")],
        default="handoff", help_text="what a picture, voice message, video or file from a customer gets from the AI")
    non_text_reply = models.CharField(max_length=500, blank=True, default="已收到您发送的文件，正在为您转接人工客服。")
    handoff_keywords = models.JSONField(default=default_handoff_keywords, blank=True,
                                        help_text="a customer message containing one of these asks for a human")
    handoff_message = models.CharField(max_length=500, default="正在为您转接人工客服，请稍候。")
    max_consecutive_fallbacks = models.PositiveSmallIntegerField(
        default=3, help_text="after this many fallback scripts in a row the conversation goes to a human")
    knowledge_top_k = models.PositiveSmallIntegerField(default=3)
    knowledge_min_score = models.FloatField(
        default=0.3, help_text="knowledge-only mode answers with the best entry at or above this score")
    # Ratings of answers (conversations/services/answer_feedback.py; docs/ANSWERING.md, "Ratings").
    answer_feedback = models.BooleanField(
        default=False, help_text="AI and knowledge answers ask to be rated: 👍/👎 items on 微信客服, the prompt "
                                 "below on self-built apps")
    feedback_prompt = models.CharField(
        max_length=200, blank=True, default="这个回答有帮助吗？回复“有用”或“没用”。",
        help_text="self-built apps: added under each answer (name the keywords below)")
    feedback_helpful_keywords = models.JSONField(
        default=default_helpful_keywords, blank=True,
        help_text="a reply that is exactly one of these rates the last answer helpful")
    feedback_unhelpful_keywords = models.JSONField(
        default=default_unhelpful_keywords, blank=True,
        help_text="a reply that is exactly one of these rates the last answer not helpful")
    feedback_thanks = models.CharField(max_length=200, blank=True, default="感谢您的评价！",
                                       help_text="sent after a rating (empty: nothing)")
    # Sensitive words (conversations/services/sensitive_words.py): replies containing one are never sent.
    mask_sensitive_input = models.BooleanField(
        default=False, help_text="a customer's sensitive words are shown as ** on the screens and in the API")
    # Inactivity auto-close of conversations an agent owns (tickets/inactivity.py; docs/KF_SESSIONS.md).
    inactivity_close = models.BooleanField(
        default=False, help_text="a conversation an agent owns is closed when the customer stops answering: "
                                 "a warning first, then the close (with the closing message)")
    inactivity_warn_minutes = models.PositiveIntegerField(
        default=30, help_text="minutes without a customer reply after our last message before the warning")
    inactivity_warning = models.CharField(
        max_length=500, default="您好，请问还有其他问题吗？如无回复，本次会话将在 10 分钟后自动结束。",
        help_text="the warning (mention the minutes below)")
    inactivity_close_minutes = models.PositiveIntegerField(
        default=10, help_text="minutes after the warning without a customer reply before the close")

    class Meta:
        verbose_name = verbose_name_plural = "desk settings"

    def __str__(self) -> str:
        return "Desk settings"

    @classmethod
    def current(cls) -> DeskSettings:
        return cls.objects.get_or_create(pk=1)[0]


class SensitiveWord(models.Model):
    """A word of the tenant's own sensitive-word list, on top of the platform's (SENSITIVE_WORDS_FILE): flagged in
    customers' messages, never sent in a reply (conversations/services/sensitive_words.py)."""

    word = models.CharField(_("word"), max_length=64, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("sensitive word")
        verbose_name_plural = _("sensitive words")
        ordering = ["word"]

    def __str__(self) -> str:
        return self.word


class FallbackScript(models.Model):
    """What the customer gets when the AI cannot answer (provider failing, breaker open, no knowledge)."""

    name = models.CharField(max_length=100)
    keywords = models.JSONField(default=list, blank=True, help_text="matched against the customer's message")
    text = models.TextField()
    is_default = models.BooleanField(default=False, help_text="used when no keyword matches")
    enabled = models.BooleanField(default=True)
    used_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-is_default", "name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    """A customer (WeCom member or WeChat user) as seen through one app (and 微信客服 account)."""

    app = models.ForeignKey(WeComApp, on_delete=models.PROTECT, related_name="contacts")
    external_id = models.CharField(max_length=128, help_text="member UserID or external_userid")
    open_kfid = models.CharField(max_length=64, blank=True)
    display_name = models.CharField(max_length=100, blank=True)
    # 微信客服 enter_session: where the customer came from (for routing).
    scene = models.CharField(max_length=64, blank=True)
    scene_param = models.CharField(max_length=128, blank=True)
    # Kept by the tenant's people and integrators (the API): free notes, and custom attributes as a flat
    # object (services/contacts.py holds the limits: keys up to 64 characters, scalar values, bounded size).
    notes = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # The profile WeCom gives (services/profiles.py, by a job): its name goes to display_name, its avatar stays
    # WeCom's URL. A refresh that failed keeps the old profile and says why here, until one succeeds.
    avatar_url = models.URLField(max_length=500, blank=True)
    profile_fetched_at = models.DateTimeField(null=True, blank=True, help_text="when WeCom last gave the profile")
    profile_checked_at = models.DateTimeField(null=True, blank=True, help_text="when it was last asked")
    profile_error = models.CharField(max_length=300, blank=True, help_text="why the last refresh failed")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "external_id", "open_kfid"], name="unique_contact")]

    def __str__(self) -> str:
        return self.display_name or self.external_id


class Conversation(models.Model):
    """A contact's exchange until it goes idle or is closed. State changes only through services."""

    class State(models.TextChoices):
        BOT = "bot", "answered by the AI"
        WAITING_HUMAN = "waiting_human", "waiting for a human"
        HUMAN = "human", "owned by a human agent"
        CLOSED = "closed", "closed"

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="conversations")
    state = models.CharField(max_length=16, choices=State.choices, default=State.BOT)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="conversations", help_text="the human who owns it (state human)")
    # The "we will answer soon" message goes out once per wait, not once per customer message.
    waiting_notice_sent = models.BooleanField(default=False)
    consecutive_fallbacks = models.PositiveSmallIntegerField(default=0)
    # Inactivity auto-close (tickets/inactivity.py): when the customer was warned, and the conversation's latest
    # message then (the warning itself, or the one it could not follow); the warning counts while that is still
    # the latest message.
    inactivity_warned_at = models.DateTimeField(null=True, blank=True)
    inactivity_warned_message_id = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_message_at"]
        constraints = [
            models.UniqueConstraint(fields=["contact"], condition=~models.Q(state="closed"),
                                    name="one_open_conversation_per_contact"),
        ]
        indexes = [  # the inactivity sweep reads only the conversations agents own
            models.Index(fields=["last_message_at"], condition=models.Q(state="human"), name="conversation_human_idle"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.contact} ({self.state})"

    @property
    def human_owned(self) -> bool:
        return self.state in (self.State.WAITING_HUMAN, self.State.HUMAN)


class Message(models.Model):
    """One line of a conversation's transcript, whoever wrote it."""

    class Author(models.TextChoices):
        CUSTOMER = "customer", "customer"
        AI = "ai", "AI answer"
        KNOWLEDGE = "knowledge", "knowledge-base answer"
        FALLBACK = "fallback", "fallback script"
        NOTICE = "notice", "rate-limit notice"
        HANDOFF = "handoff", "handoff message"
        AGENT = "agent", "human agent"
        API = "api", "integration (API)"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    author = models.CharField(max_length=12, choices=Author.choices)
    text = models.TextField()
    inbound = models.ForeignKey(InboundMessage, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="transcript")
    # An answer's knowledge entry: the one it quotes (author knowledge), the best one the model was shown at
    # or above the threshold (author ai). Its uses and ratings are counted on kb.EntryStats.
    knowledge_entry = models.ForeignKey("kb.KnowledgeEntry", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    # The sensitive words a customer's message contained (platform's and tenant's lists), for the screens' flag.
    sensitive_words = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

    @property
    def from_bot(self) -> bool:
        return self.author in (self.Author.AI, self.Author.KNOWLEDGE, self.Author.FALLBACK, self.Author.NOTICE)


class OutboundMessage(models.Model):
    """The outbound ledger: a row per message part, created before sending (docs/DESIGN_RULES.md step 5)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        RETRYING = "retrying", "retrying"
        DEAD = "dead", "dead letter"
        CANCELLED = "cancelled", "cancelled (a human took over)"

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="outbound_messages")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="outbound_messages")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="parts")
    # Derived from the cause (e.g. "inbound:42:1"): a cause can never produce a second row.
    idempotency_key = models.CharField(max_length=100, unique=True)
    author = models.CharField(max_length=12, choices=Message.Author.choices)
    part = models.PositiveSmallIntegerField(default=1)
    parts_total = models.PositiveSmallIntegerField(default=1)
    content = models.TextField()
    # Non-text parts: the file to upload (media/upload) and send as msgtype; media_id once uploaded.
    msgtype = models.CharField(max_length=10, default="text")
    media = models.FileField(upload_to=media_path, blank=True, max_length=200)
    media_id = models.CharField(max_length=128, blank=True)
    # 微信客服 event messages (welcome, closing) go through kf/send_msg_on_event with this code.
    event_code = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_errcode = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    wecom_msgid = models.CharField(max_length=128, blank=True)
    # Bot answers queued before the pipeline itself handed the conversation off are the
    # outcomes of earlier messages and still go out; only a human taking over silences them.
    survives_handoff = models.BooleanField(default=False)
    # The trace the row's delivery events join: its cause's (the inbound message it answers, set
    # together with `inbound`), or the row's own for sends nobody's message caused (an agent's reply).
    trace_id = models.UUIDField(null=True, blank=True, db_index=True)
    inbound = models.ForeignKey(InboundMessage, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="outbound_messages", help_text="the customer message this answers")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "outbound message"
        indexes = [
            models.Index(fields=["contact", "status", "id"], name="outbound_queue"),
            models.Index(fields=["status", "next_attempt_at"], name="outbound_sweep"),
            models.Index(fields=["contact", "sent_at"], name="outbound_member_pace"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} ({self.status})"

    @property
    def from_bot(self) -> bool:
        return self.author in (Message.Author.AI, Message.Author.KNOWLEDGE, Message.Author.FALLBACK,
                               Message.Author.NOTICE)


class AnswerFeedback(models.Model):
    """A customer's rating of one AI or knowledge answer (conversations/services/answer_feedback.py): one per
    answer, the latest click or keyword reply counts."""

    class Rating(models.TextChoices):
        HELPFUL = "helpful", _("helpful")
        UNHELPFUL = "unhelpful", _("not helpful")

    answer = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback",
                                  verbose_name=_("answer"))
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+", verbose_name=_("customer"))
    knowledge_entry = models.ForeignKey("kb.KnowledgeEntry", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+", verbose_name=_("knowledge entry"))
    rating = models.CharField(_("rating"), max_length=10, choices=Rating.choices)
    inbound = models.ForeignKey(InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                help_text="the click or reply that rated the answer last")
    created_at = models.DateTimeField(_("rated"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("answer rating")
        verbose_name_plural = _("answer ratings")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.get_rating_display()}: {self.answer.text[:40]}"


class ApiKey(models.Model):
    """A REST API credential of this tenant; only a hash is stored, the key is shown once.

    Scopes, expiry and the per-key rate: conversations/scopes.py, docs/API.md ("Authentication").
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=128, editable=False)
    is_active = models.BooleanField(default=True)
    # ["tickets:read", "settings:write", ...]: what the key may do (write implies read).
    scopes = models.JSONField(_("scopes"), default=list, blank=True, validators=[validate_scopes])
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True,
                                      help_text=_("empty: never; after this time the key is refused"))
    throttle_per_minute = models.PositiveIntegerField(
        _("requests per minute"), default=API_KEY_DEFAULT_RATE_PER_MINUTE,
        validators=[MinValueValidator(1), MaxValueValidator(API_KEY_MAX_RATE_PER_MINUTE)],
        help_text=_("over this the API answers 429 with Retry-After"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Written at most once a minute per key (conversations/services/api_keys.py), not on every request.
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


from conversations.ai.models import AIProvider  # noqa: E402, F401  (the AI provider lives in conversations/ai/)
from conversations.idempotency import IdempotentSend  # noqa: E402, F401  (sends through the API)
from conversations.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent  # noqa: E402, F401


class KnowledgeGap(models.Model):
    """An "unanswered question": similar customer questions the knowledge base had no answer for,
    grouped by conversations.services.knowledge_gaps (docs/KNOWLEDGE.md, "Knowledge gaps").

    Resolved once an entry written for it is saved (`entry`); dismissed when it is noise (greetings,
    chatter): a dismissed group keeps absorbing its look-alikes, so they stay out of the open list.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        RESOLVED = "resolved", _("resolved")
        DISMISSED = "dismissed", _("dismissed")

    question = models.CharField(_("question"), max_length=300,
                                help_text=_("the group's most frequent wording"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    message_count = models.PositiveIntegerField(_("messages"), default=0)
    # A few of the group's questions, worded differently: [{"inbound": id, "text": "..."}]
    examples = models.JSONField(_("examples"), default=list, blank=True)
    first_seen_at = models.DateTimeField(_("first seen"))
    last_seen_at = models.DateTimeField(_("last seen"))
    entry = models.ForeignKey("kb.KnowledgeEntry", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", verbose_name=_("knowledge entry"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    # The representative question's vector, to group by meaning; empty when made without an embedder
    # or under another model (then it is embedded again).
    vector_model = models.CharField(max_length=120, blank=True, editable=False)
    vector = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("unanswered question")
        verbose_name_plural = _("unanswered questions")
        ordering = ["-message_count", "-last_seen_at"]
        indexes = [models.Index(fields=["status", "-last_seen_at"], name="conv_gap_status_seen_idx")]

    def __str__(self) -> str:
        return self.question


class KnowledgeGapMessage(models.Model):
    """One customer message of a knowledge gap: why it counts, and its retrieval score."""

    class Reason(models.TextChoices):
        FALLBACK = "fallback", _("fallback script")
        NO_ANSWER = "no_answer", _("handed off: no answer")
        LOW_SCORE = "low_score", _("knowledge below the threshold")

    gap = models.ForeignKey(KnowledgeGap, on_delete=models.CASCADE, related_name="messages")
    # A message belongs to one gap at most (the collector's idempotency).
    inbound = models.OneToOneField(InboundMessage, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=1000)
    reason = models.CharField(max_length=12, choices=Reason.choices)
    top_score = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text


class KnowledgeGapScan(models.Model):
    """How far the collector has read the trace (one row per tenant schema): every `processed` event
    with a lower id was looked at and needs no second look."""

    scanned_up_to = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"scanned up to trace event {self.scanned_up_to}"


from conversations.audit.models import AuditLogEntry  # noqa: E402, F401  (the audit log lives in conversations/audit/)
from conversations.search.models import MessageSearchEntry  # noqa: E402, F401  (the message-text index)
