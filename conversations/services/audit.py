"""The audit log's one writer: `record(...)`, called inside the write's transaction (or right after it).

Who: `actor_for(user)` ("api-key:<name>" for an integration, "user:<username>" for a person). What: an
action name and a target "<type>:<id>". The request id and the message trace id come from the log context
(tenants/log_context.py), so an entry leads to the request's log lines. `detail` is bounded and has its
secrets masked before it is stored: a caller may pass what it has without thinking about either.
"""

from __future__ import annotations

import re

from structlog.contextvars import get_contextvars

from conversations.models import AuditLogEntry

MAX_STRING = 200
MAX_ITEMS = 50
MAX_DEPTH = 4
# The value of a key that looks like a secret is masked ("secret", "corp_secret", "api_key", "token",
# "encoding_aes_key"; not "keywords").
SECRET_KEY = re.compile(r"secret|token|passw|signature|authorization|cookie|(^|_|-)key$|api_?key", re.IGNORECASE)
MASK = "***"


def actor_for(user) -> str:
    """"api-key:<name>" for a request authenticated by an API key, "user:<username>" for a person."""
    api_key = getattr(user, "api_key", None)
    if api_key is not None:
        return f"api-key:{api_key.name}"
    return f"user:{user.get_username()}" if user is not None and user.is_authenticated else "anonymous"


def record(*, actor: str, action: str, target: str = "", detail: dict | None = None) -> AuditLogEntry:
    """Add one entry to the current tenant's audit log."""
    context = get_contextvars()
    return AuditLogEntry.objects.create(
        actor=actor[:200], action=action[:200], target=target[:200], detail=bounded_detail(detail or {}),
        request_id=str(context.get("request_id") or "")[:128], trace_id=str(context.get("trace_id") or "")[:64])


def bounded_detail(value, depth: int = 0):
    """`value` made safe to store: strings cut at MAX_STRING, lists and objects at MAX_ITEMS, nesting at
    MAX_DEPTH, and the value of any key that looks like a secret replaced by MASK."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return "…"
        items = list(value.items())
        bounded = {str(key)[:MAX_STRING]: MASK if _is_secret(str(key)) else bounded_detail(item, depth + 1)
                   for key, item in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            bounded["…"] = f"{len(items) - MAX_ITEMS} more"
        return bounded
    if isinstance(value, (list, tuple, set, frozenset)):
        if depth >= MAX_DEPTH:
            return "…"
        items = list(value)
        bounded = [bounded_detail(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            bounded.append(f"… {len(items) - MAX_ITEMS} more")
        return bounded
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    return text if len(text) <= MAX_STRING else text[:MAX_STRING] + "…"


def _is_secret(key: str) -> bool:
    return bool(SECRET_KEY.search(key))
