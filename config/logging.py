"""Structured logging: one stream of structlog events, rendered for humans (console) or machines (json).

Every standard-library logger (Django, Dramatiq, uvicorn, daphne, Channels, httpx, ours) goes through
the same `ProcessorFormatter` as structlog's own events, so in production every line is one JSON
object carrying what the entry point bound (tenants/log_context.py: tenant, request_id, job_id,
trace_id, ...), the OpenTelemetry span when one is active, and never a secret (`redact_secrets`).
docs/OBSERVABILITY.md, "Logs", lists the fields.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

import structlog

try:  # optional: present when OpenTelemetry is set up (docs/OBSERVABILITY.md)
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - depends on the installed packages
    otel_trace = None

REDACTED = "[REDACTED]"

# Event keys whose value is a secret whatever it looks like (compared lower-case, "-" as "_").
SECRET_KEYS = frozenset({
    "secret", "corp_secret", "corpsecret", "client_secret", "secret_key", "private_key",
    "encoding_aes_key", "encodingaeskey", "aes_key", "api_key", "apikey", "x_api_key",
    "access_token", "refresh_token", "token", "password", "passwd", "authorization", "proxy_authorization",
    "cookie", "set_cookie", "sessionid", "session_key", "csrftoken", "csrfmiddlewaretoken",
    "field_encryption_keys",
})
SECRET_KEY_SUFFIXES = ("_secret", "_token", "_password", "_api_key", "_aes_key")

_SECRET_NAMES = ("access_token|refresh_token|corpsecret|corp_secret|secret|token|api_key|apikey|key|password|passwd"
                 "|encodingaeskey|encoding_aes_key|aes_key|sessionid|csrftoken")
# Secrets inside free text: query or cookie parameters (`?access_token=...`, WeCom's gettoken
# `corpsecret=...`, a provider's `?key=...`), quoted pairs of a JSON body or a dict's repr, and HTTP
# authorization values (ours: `Api-Key wd_...`). Not after a word character: `natural_key=` stays.
_SECRET_PATTERNS = (
    (re.compile(rf"(?i)(?<![\w-])({_SECRET_NAMES})=([^&\s'\",;#)]+)"), rf"\1={REDACTED}"),
    (re.compile(rf"(?i)([\"'])({_SECRET_NAMES})\1(\s*:\s*)([\"'])(?:(?!\4).)*\4"), rf"\1\2\1\3\4{REDACTED}\4"),
    (re.compile(r"(?i)\b(bearer|basic|api-key)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
)


def _secret_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(SECRET_KEY_SUFFIXES)


def redact_text(text: str) -> str:
    """`text` with the secrets it visibly carries masked (parameters, quoted pairs, bearer tokens)."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


def redact_secrets(logger, method_name: str, event_dict: dict) -> dict:
    """Mask secret keys anywhere in the event, and secrets inside every string (URLs in exception
    messages, httpx's request lines, response bodies)."""
    for key, value in event_dict.items():
        if key.startswith("_"):  # structlog's own: the LogRecord, its origin
            continue
        event_dict[key] = REDACTED if _secret_key(key) else _redact(value)
    return event_dict


def add_otel_ids(logger, method_name: str, event_dict: dict) -> dict:
    """The active OpenTelemetry span's trace and span id, when there is one."""
    if otel_trace is None:
        return event_dict
    span_context = otel_trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("otel_trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


def add_request_fields(logger, method_name: str, event_dict: dict) -> dict:
    """django.request logs 4xx/5xx responses after the middleware chain has returned (and the
    request's log context is gone): take the request id and tenant from the request it names."""
    record = event_dict.get("_record")
    request = getattr(record, "request", None)
    request_id = getattr(request, "request_id", None)
    if request_id is None:
        return event_dict
    event_dict.setdefault("request_id", request_id)
    tenant = getattr(request, "tenant", None)
    if tenant is not None:
        event_dict.setdefault("tenant", tenant.schema_name)
    event_dict.setdefault("method", request.method)
    event_dict.setdefault("path", request.path)
    return event_dict


# Run when the event is made: in the caller's thread and context, for structlog and stdlib alike.
_SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_otel_ids,
]
_FOREIGN_PRE_CHAIN = [
    *_SHARED_PROCESSORS,
    add_request_fields,
    structlog.stdlib.ExtraAdder(allow=["status_code"]),
]
_STRUCTLOG_PROCESSORS = [*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter]


def structured_formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter of every handler: exception text, redaction, then JSON or console lines."""
    renderer = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_FOREIGN_PRE_CHAIN,
        processors=[
            structlog.processors.StackInfoRenderer(),
            # Before redaction: the traceback's messages carry URLs (an httpx error names the request's).
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )


def configure_logging(*, level: str, fmt: str) -> dict:
    """Configure structlog and return the LOGGING dict for Django (applied by `apply_logging`)."""
    if fmt not in ("json", "console"):
        raise ValueError(f"LOG_FORMAT must be json or console, not {fmt!r}")
    # The same processor list in both formats: loggers cached on first use keep working when
    # the stdlib side is reconfigured (the format lives in the formatter only).
    structlog.configure(
        processors=_STRUCTLOG_PROCESSORS,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Libraries that configured handlers of their own before Django set up logging: send them
    # to the root handler instead, so their lines are structured too.
    through_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": "config.logging.structured_formatter", "fmt": fmt}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": through_root,  # Django's DEFAULT_LOGGING gives it a plain console handler in DEBUG
            "django.server": through_root,
            "daphne": through_root,
            "django.db.backends": {"level": "WARNING"},
            "pika": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


# uvicorn's loggers that carry a handler of uvicorn's own (plain text, propagate=False) once uvicorn
# has configured logging, which it does before it imports the application.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def apply_logging(config: dict) -> None:
    """Django's LOGGING_CONFIG: dictConfig, Python's warnings as log lines, then uvicorn's own handlers
    replaced by the root's.

    A uvicorn logger without handlers is left alone: `--no-access-log` empties uvicorn.access and
    stops its propagation, and uvicorn only writes access lines while that logger has a handler.
    """
    logging.config.dictConfig(config)
    logging.captureWarnings(True)  # Python's warnings (a library's UserWarning) as lines of py.warnings
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers = []
            logger.propagate = True
