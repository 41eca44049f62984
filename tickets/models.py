"""Tickets, agents and their policy: what humans do with handed-off conversations. Tenant schema."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TicketSettings(models.Model):
    """The tenant's service levels and queue policy (one row; `TicketSettings.current()`)."""

    first_response_minutes = models.PositiveIntegerField(_("first response target (minutes)"), default=5)
    resolution_minutes = models.PositiveIntegerField(_("resolution target (minutes)"), default=240)
    waiting_message = models.CharField(
        _("message when no agent is online"), max_length=500,
        default="人工客服暂时不在线，我们会尽快回复您。")
    # Queue position notices (tickets/teams/position.py; docs/AGENTS.md, "Queue position"): each one is a reply
    # WeCom counts against the customer's 5 (微信客服), so they are few, and never the last reply left.
    queue_position_notices = models.BooleanField(
        _("tell waiting customers their place in the queue"), default=True)
    queue_position_message = models.CharField(
        _("queue position message"), max_length=200, default="您前面还有 {position} 位客户，请稍候。",
        help_text=_("{position} is the number of customers ahead. In English, e.g. \"{position} customer(s) "
                    "ahead of you, please wait.\""))
    queue_position_step = models.PositiveSmallIntegerField(
        _("tell again after the queue moved by"), default=3,
        help_text=_("a new notice when the place dropped by at least this many since the last one (and when it "
                    "reaches 1)"))
    queue_position_interval_minutes = models.PositiveSmallIntegerField(
        _("minutes between two queue notices"), default=5)

    class Meta:
        verbose_name = verbose_name_plural = _("ticket settings")

    def __str__(self) -> str:
        return str(_("Ticket settings"))

    @classmethod
    def current(cls) -> TicketSettings:
        return cls.objects.get_or_create(pk=1)[0]


class AgentProfile(models.Model):
    """A staff user who answers customers; supervisors see and reassign everything in the tenant."""

    class Role(models.TextChoices):
        AGENT = "agent", _("agent")
        SUPERVISOR = "supervisor", _("supervisor")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile")
    role = models.CharField(_("role"), max_length=12, choices=Role.choices, default=Role.AGENT)
    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    max_concurrent = models.PositiveSmallIntegerField(
        _("concurrent conversations"), default=5, help_text=_("conversations this agent may own at once"))
    wecom_userid = models.CharField(_("WeCom UserID"), max_length=64, blank=True,
                                    help_text=_("the servicer id used for 微信客服 sessions (state 3)"))
    is_active = models.BooleanField(_("active"), default=True)
    # Round-robin (tickets/teams/assignment.py): the online agent whose last offer or assignment is the oldest
    # is offered next. In Postgres, so the rotation survives restarts and is shared by every process.
    last_offered_at = models.DateTimeField(_("last offered or assigned"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("agent")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.user.get_username()

    @property
    def is_supervisor(self) -> bool:
        return self.role == self.Role.SUPERVISOR


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("open")
        ASSIGNED = "assigned", _("assigned")
        PENDING_CUSTOMER = "pending_customer", _("pending customer")
        RESOLVED = "resolved", _("resolved")
        CLOSED = "closed", _("closed")

    class Priority(models.TextChoices):
        LOW = "low", _("low")
        NORMAL = "normal", _("normal")
        HIGH = "high", _("high")
        URGENT = "urgent", _("urgent")

    class Reason(models.TextChoices):
        CUSTOMER_ASKED = "customer_asked", _("customer asked for a human")
        AI_CANNOT_ANSWER = "ai_cannot_answer", _("the AI could not answer")
        REPEATED_FALLBACKS = "repeated_fallbacks", _("too many fallback answers in a row")
        NON_TEXT = "non_text", _("a picture, voice message, video or file")
        MANUAL = "manual", _("opened manually")

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.PROTECT,
                                     related_name="tickets")
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    reason = models.CharField(_("reason"), max_length=20, choices=Reason.choices)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_tickets", verbose_name=_("assignee"))
    offered_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text=_("the agent this waiting ticket is offered to"))
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True, verbose_name=_("tags"))
    team = models.ForeignKey("tickets.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="tickets", verbose_name=_("team"))
    # The place in its team's queue the customer was last told, and when (tickets/teams/position.py).
    queue_position_told = models.PositiveIntegerField(null=True, blank=True, editable=False)
    queue_position_told_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one ticket in progress per conversation: a second handoff reuses it.
            models.UniqueConstraint(fields=["conversation"], condition=models.Q(status__in=["open", "assigned",
                                                                                          "pending_customer"]),
                                    name="one_active_ticket_per_conversation"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject[:40]}"

    @property
    def first_response_breached(self) -> bool:
        due, done = self.first_response_due_at, self.first_responded_at
        return bool(due and (done or timezone.now()) > due)

    @property
    def resolution_breached(self) -> bool:
        due, done = self.resolution_due_at, self.resolved_at
        return bool(due and (done or timezone.now()) > due)


class TicketEvent(models.Model):
    """The ticket's timeline: who did what, when (notes included)."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    kind = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.created_at:%Y-%m-%d %H:%M}"


class KnowledgeProposal(models.Model):
    """An agent's answer on a resolved ticket, proposed as a knowledge entry for an operator to approve
    (edited or not) or reject (tickets.knowledge_proposals; docs/KNOWLEDGE.md, "Knowledge gaps")."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("proposed")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")

    # One proposal per ticket: resolving it again (after a reopen) proposes nothing new.
    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="knowledge_proposal",
                                  verbose_name=_("ticket"))
    question = models.CharField(_("question"), max_length=300)
    answer = models.TextField(_("answer"), max_length=5000)
    tags = ArrayField(models.CharField(max_length=32), default=list, blank=True, size=20, verbose_name=_("tags"))
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", verbose_name=_("agent"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PROPOSED)
    entry = models.ForeignKey("kb.KnowledgeEntry", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", verbose_name=_("knowledge entry"))
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("decided by"))
    created_at = models.DateTimeField(_("proposed at"), auto_now_add=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        verbose_name = _("knowledge proposal")
        verbose_name_plural = _("knowledge proposals")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question


from tickets.business_hours_models import BusinessHours  # noqa: E402, F401
from tickets.canned.models import CannedReply  # noqa: E402, F401
from tickets.csat_models import CsatSettings, Survey  # noqa: E402, F401
from tickets.labels.models import Label  # noqa: E402, F401
from tickets.teams.models import Team  # noqa: E402, F401
