"""Teams (技能组): the agents who answer one kind of question (售后, 账单 …). Imported at the end of
tickets/models.py; `Ticket.team` is the team a waiting ticket is queued for."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Team(models.Model):
    name = models.CharField(_("name"), max_length=60, unique=True)
    # How a handed-off conversation finds its team: a keyword in the customer's recent messages, or the
    # customer's choice in the desk's menu (the menu item's text).
    keywords = models.JSONField(_("keywords"), default=list, blank=True)
    menu_choice = models.CharField(_("menu choice"), max_length=64, blank=True)
    members = models.ManyToManyField("tickets.AgentProfile", related_name="teams", blank=True,
                                     verbose_name=_("members"))
    is_default = models.BooleanField(_("default team"), default=False,
                                     help_text=_("takes the conversations no other team's keywords match"))
    priority = models.PositiveSmallIntegerField(_("order"), default=100,
                                                help_text=_("teams are tried in this order, lowest first"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["priority", "name"]
        constraints = [models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                               name="one_default_team")]

    def __str__(self) -> str:
        return self.name
