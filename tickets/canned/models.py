"""A canned reply: shared by the tenant (owner null) or an agent's own. Imported at the end of tickets/models.py."""

from __future__ import annotations

import re
import uuid
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_unicode_slug
from django.db import connection, models
from django.utils.translation import gettext_lazy as _

from conversations.services.media import attachment_msgtype

SHORTCODE_MAX_LENGTH = 32
TEXT_MAX_LENGTH = 2000
# The placeholders a reply's text may hold, filled when an agent picks it: {customer_name} and {agent_name}.
VARIABLES = ("customer_name", "agent_name")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def unknown_variables(text: str) -> list[str]:
    return [name for name in dict.fromkeys(_PLACEHOLDER.findall(text)) if name not in VARIABLES]


def fill(text: str, *, customer_name: str, agent_name: str) -> str:
    values = {"customer_name": customer_name, "agent_name": agent_name}
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def attachment_path(instance, filename: str) -> str:
    """Under the tenant's schema like every media file; the file keeps its name, which the customer sees."""
    name = PurePath(filename).name[-100:] or "file"
    return f"{connection.schema_name}/canned/{uuid.uuid4().hex}/{name}"


class CannedReply(models.Model):
    shortcode = models.CharField(
        _("shortcode"), max_length=SHORTCODE_MAX_LENGTH, validators=[validate_unicode_slug],
        help_text=_("typed after / in the reply box: letters, digits, - and _ (Chinese allowed)"))
    title = models.CharField(_("title"), max_length=100)
    text = models.TextField(_("text"), max_length=TEXT_MAX_LENGTH, help_text=_(
        "variables: {customer_name} (the customer's name) and {agent_name} (the agent's display name)"))
    attachment = models.FileField(_("attachment"), upload_to=attachment_path, blank=True, max_length=200,
                                  help_text=_("a picture (JPG or PNG up to 10 MB) or a file (up to 20 MB), "
                                              "sent after the text"))
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="canned_replies", verbose_name=_("owner"),
                              limit_choices_to={"agent_profile__isnull": False},
                              help_text=_("empty: shared by every agent of the tenant; else this agent's own"))
    enabled = models.BooleanField(_("enabled"), default=True)
    usage_count = models.PositiveIntegerField(_("times used"), default=0, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        app_label = "tickets"
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["shortcode", "id"]
        constraints = [
            # One shortcode per scope: the shared list, and each agent's own list.
            models.UniqueConstraint(fields=["shortcode"], condition=models.Q(owner__isnull=True),
                                    name="canned_reply_shared_shortcode",
                                    violation_error_message=_("A shared canned reply has this shortcode.")),
            models.UniqueConstraint(fields=["owner", "shortcode"], name="canned_reply_own_shortcode",
                                    violation_error_message=_("This agent has a canned reply with this shortcode.")),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcode} {self.title}"

    def clean(self) -> None:
        errors = {}
        unknown = unknown_variables(self.text or "")
        if unknown:
            errors["text"] = _("Unknown variables: %(names)s. Use {customer_name} or {agent_name}.") % {
                "names": ", ".join(f"{{{name}}}" for name in unknown)}
        if self.attachment:
            from tickets.services import ATTACHMENT_REFUSALS  # tickets.services imports the models

            _kind, problem = attachment_msgtype(filename=self.attachment.name, size=self.attachment.size or 0)
            if problem is not None:
                errors["attachment"] = ATTACHMENT_REFUSALS[problem]
        if errors:
            raise ValidationError(errors)

    @property
    def attachment_kind(self) -> str | None:
        """How the attachment goes out: "image" or "file" (WeCom's rules, conversations/services/media.py)."""
        if not self.attachment:
            return None
        return attachment_msgtype(filename=self.attachment.name, size=self.attachment.size or 0)[0]

    @property
    def attachment_name(self) -> str:
        return PurePath(self.attachment.name).name if self.attachment else ""
