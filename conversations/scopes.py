"""The API's resource families and the scopes a key holds on them (docs/API.md, "Scopes").

Every API view names its family (`api_scope = "tickets"`); a key holds "<family>:read" and/or
"<family>:write". Safe methods (GET, HEAD, OPTIONS) need read, every other method write, and write
implies read. A key made before scopes existed got every scope (migration 0017), so integrations
that worked before keep working.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

READ, WRITE = "read", "write"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# family -> what it covers, in the order the admin lists them.
FAMILIES = {
    "knowledge": _("knowledge base"),
    "contacts": _("contacts"),
    "conversations": _("conversations and messages"),
    "tickets": _("tickets and agents"),
    "settings": _("settings"),
    "deliveries": _("dead letters"),
    "webhooks": _("webhooks"),
}
ALL_SCOPES = tuple(f"{family}:{access}" for family in FAMILIES for access in (READ, WRITE))
ACCESS_LABELS = {READ: _("read"), WRITE: _("write")}

# A key's request rate (the throttle in conversations/api/throttling.py): enough for a busy integration,
# low enough that a runaway loop is stopped within a minute. The ceiling bounds the Redis window's size
# (one entry per request in the minute).
API_KEY_DEFAULT_RATE_PER_MINUTE = 600
API_KEY_MAX_RATE_PER_MINUTE = 100_000


def scope_choices() -> list[tuple[str, str]]:
    """(scope, label) for the admin's checkboxes, e.g. ("tickets:write", "工单与坐席：写入")."""
    return [(scope, format_lazy("{}: {}", FAMILIES[scope.split(":")[0]], ACCESS_LABELS[scope.split(":")[1]]))
            for scope in ALL_SCOPES]


def required_scope(*, family: str, method: str) -> str:
    return f"{family}:{READ if method.upper() in SAFE_METHODS else WRITE}"


def grants(scopes: Iterable[str], wanted: str) -> bool:
    """Whether `scopes` grant `wanted`; "<family>:write" implies "<family>:read"."""
    held = set(scopes)
    family, access = wanted.split(":")
    return wanted in held or (access == READ and f"{family}:{WRITE}" in held)


def normalized_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes as stored: known ones only (else ValidationError), no duplicates, in ALL_SCOPES' order."""
    scopes = list(scopes) if not isinstance(scopes, str) else [scopes]
    unknown = sorted({str(scope) for scope in scopes} - set(ALL_SCOPES))
    if unknown:
        raise ValidationError(_("Unknown scope(s): %(scopes)s.") % {"scopes": ", ".join(unknown)}, code="invalid")
    return [scope for scope in ALL_SCOPES if scope in scopes]


def validate_scopes(value) -> None:
    """Model field validator (the admin form's clean)."""
    if not isinstance(value, list):
        raise ValidationError(_("A list of scopes."), code="invalid")
    normalized_scopes(value)
