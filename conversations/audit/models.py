"""AuditLogEntry: one row per write through the API and per sensitive admin action. Tenant schema.

Lives in the `conversations` app (imported from conversations/models.py), so its table is
`conversations_auditlogentry`. Rows are only ever added (conversations.services.audit.record).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditLogEntry(models.Model):
    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    # "api-key:<name>" or "user:<username>"
    actor = models.CharField(_("actor"), max_length=200, db_index=True)
    # "POST /api/fallback-scripts/" (the route, ids as {id}) or a semantic name ("dead_letters.resend")
    action = models.CharField(_("action"), max_length=200, db_index=True)
    # "<type>:<id>" ("fallbackscript:12"), empty when the write has no single object
    target = models.CharField(_("target"), max_length=200, blank=True)
    # Bounded and without secrets (conversations.services.audit.bounded_detail)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    request_id = models.CharField(_("request id"), max_length=128, blank=True)
    trace_id = models.CharField(_("trace id"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}".rstrip()
