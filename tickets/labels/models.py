"""Labels (标签) the tenant's people put on conversations and tickets. Imported at the end of tickets/models.py.

A label lives in the tickets app because conversations must not know about it (apps depend one way): the
conversation side of the relation is declared here, `conversation.labels` is its reverse accessor.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

NAME_MAX_LENGTH = 40
COLOR_VALIDATOR = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("a colour like #1e88e5"))


class Label(models.Model):
    name = models.CharField(_("name"), max_length=NAME_MAX_LENGTH, unique=True)
    color = models.CharField(_("colour"), max_length=7, default="#607d8b", validators=[COLOR_VALIDATOR])
    description = models.CharField(_("description"), max_length=200, blank=True)
    conversations = models.ManyToManyField("conversations.Conversation", related_name="labels", blank=True,
                                           verbose_name=_("conversations"))
    tickets = models.ManyToManyField("tickets.Ticket", related_name="labels", blank=True,
                                     verbose_name=_("tickets"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A name is trimmed and not taken by another label in any case ("VIP" and "vip" would look alike
        on a chip); the admin and the API both validate through this."""
        self.name = (self.name or "").strip()
        if not self.name:
            raise ValidationError({"name": _("A label needs a name.")})
        if Label.objects.filter(name__iexact=self.name).exclude(pk=self.pk).exists():
            raise ValidationError({"name": _("Another label has this name.")})
        self.color = (self.color or "").lower()
