"""Satisfaction surveys (CSAT): the tenant's settings and one survey per closed ticket (tickets/csat.py).
Imported at the end of tickets/models.py, so Django finds them in the tickets app. Tenant schema."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

# Best first: the customer's reply number is the position, the score counts up from the worst (1).
SCALES: dict[str, tuple[str, ...]] = {
    "3": ("满意", "一般", "不满意"),
    "5": ("非常满意", "满意", "一般", "不满意", "非常不满意"),
}


class CsatSettings(models.Model):
    """Whether and how customers are asked about the service after humans closed their conversation (one
    row; `CsatSettings.current()`). Off by default: the question is a message to the tenant's customers,
    worded by the tenant, and turning it on changes what every closed conversation sends."""

    class Scale(models.TextChoices):
        THREE = "3", _("3 points: 满意 / 一般 / 不满意")
        FIVE = "5", _("5 points: 非常满意 … 非常不满意")

    enabled = models.BooleanField(_("ask for a rating after a conversation with an agent"), default=False)
    scale = models.CharField(_("scale"), max_length=1, choices=Scale.choices, default=Scale.THREE)
    question = models.CharField(_("question"), max_length=300, default="请您对本次服务进行评价")
    thanks = models.CharField(_("thanks"), max_length=300, blank=True, default="感谢您的评价！",
                              help_text=_("sent after the customer's answer; empty sends nothing"))
    window_hours = models.PositiveSmallIntegerField(
        _("answer window (hours)"), default=24, validators=[MinValueValidator(1), MaxValueValidator(48)],
        help_text=_("an answer later than this is an ordinary message (at most 48, WeCom's reply window)"))

    class Meta:
        verbose_name = verbose_name_plural = _("satisfaction survey settings")

    def __str__(self) -> str:
        return str(_("Satisfaction survey settings"))

    def clean(self) -> None:
        if not self.question.strip():
            raise ValidationError({"question": _("The question cannot be empty.")})

    @classmethod
    def current(cls) -> CsatSettings:
        return cls.objects.get_or_create(pk=1)[0]

    @property
    def labels(self) -> tuple[str, ...]:
        return SCALES[self.scale]


class Survey(models.Model):
    """The survey of one closed ticket: sent (or why not), and the customer's answer (the first valid one)."""

    class Status(models.TextChoices):
        SENT = "sent", _("sent, waiting for the answer")
        ANSWERED = "answered", _("answered")
        NOT_SENT = "not_sent", _("not sent")

    ticket = models.OneToOneField("tickets.Ticket", on_delete=models.CASCADE, related_name="survey",
                                  verbose_name=_("ticket"))
    contact = models.ForeignKey("conversations.Contact", on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", verbose_name=_("agent"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    reason = models.CharField(_("why not sent"), max_length=200, blank=True)
    scale = models.CharField(_("scale"), max_length=1, choices=CsatSettings.Scale.choices)
    sent_at = models.DateTimeField(_("sent at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("answer window ends"), null=True, blank=True)
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    label = models.CharField(_("rating"), max_length=20, blank=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    inbound_id = models.BigIntegerField(null=True, blank=True)  # the customer message that answered

    class Meta:
        verbose_name = _("satisfaction survey")
        verbose_name_plural = _("satisfaction surveys")
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["contact", "status"], name="survey_contact_status")]

    def __str__(self) -> str:
        return f"#{self.ticket_id} {self.label or self.get_status_display()}"
