"""The WeCom callback endpoint: verify, decrypt, store, then acknowledge (docs/DESIGN_RULES.md steps 1-3).

Every rejection is a 4xx with a logged reason and stores nothing. A database
outage answers 503 so that WeCom redelivers: we never answer 2xx for something
that is not committed.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from conversations.services.apps import enabled_app_for_callback
from conversations.services.inbound import record_callback_message
from conversations.services.tracing import log_rejection
from conversations.wecom.crypto import WeComCrypto, WeComCryptoError
from conversations.wecom.messages import MalformedMessage, parse_callback_message
from tenants.telemetry import annotate_span

REQUIRED_PARAMS = ("msg_signature", "timestamp", "nonce")


def _query_params(request) -> dict[str, str]:
    """Percent-decode only: a literal '+' in echostr is base64, not a space (docs/WECOM_PROTOCOL.md §1)."""
    params: dict[str, str] = {}
    for pair in request.META.get("QUERY_STRING", "").split("&"):
        name, _, value = pair.partition("=")
        if name and name not in params:
            params[unquote(name)] = unquote(value)
    return params


def _reject(status: int, reason: str, **detail) -> HttpResponse:
    log_rejection(reason=reason, **detail)
    return HttpResponse(reason, status=status, content_type="text/plain")


def _fresh(timestamp: str) -> bool:
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= settings.WECOM_CALLBACK_MAX_AGE_SECONDS


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request, callback_id: str):
    try:
        app = enabled_app_for_callback(callback_id)
    except (OperationalError, InterfaceError):
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    if app is None:
        return _reject(404, "unknown or disabled app", callback_id=callback_id[:32])

    params = _query_params(request)
    missing = [name for name in REQUIRED_PARAMS if not params.get(name)]
    if request.method == "GET" and not params.get("echostr"):
        missing.append("echostr")
    if missing:
        return _reject(400, f"missing query parameters: {', '.join(missing)}", app=app.pk)
    if not _fresh(params["timestamp"]):
        return _reject(400, "stale or invalid timestamp", app=app.pk)

    crypto = WeComCrypto(app.token, app.encoding_aes_key, app.corp_id)
    if request.method == "GET":
        return _verify_url(app, crypto, params)
    return _receive(request, app, crypto, params)


def _verify_url(app, crypto, params) -> HttpResponse:
    try:
        plaintext = crypto.verify_url(params["msg_signature"], params["timestamp"], params["nonce"],
                                      params["echostr"])
    except WeComCryptoError as exc:
        return _reject(403 if exc.code == WeComCryptoError.VALIDATE_SIGNATURE else 400, exc.reason,
                       app=app.pk, code=exc.code)
    # Exactly the plaintext: no quotes, no BOM, no newline.
    return HttpResponse(plaintext.encode(), content_type="text/plain; charset=utf-8")


def _receive(request, app, crypto, params) -> HttpResponse:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > settings.WECOM_CALLBACK_MAX_BYTES:
        return _reject(413, "body too large", app=app.pk, content_length=length[:20])
    body = request.body
    if len(body) > settings.WECOM_CALLBACK_MAX_BYTES:
        return _reject(413, "body too large", app=app.pk)
    try:
        plaintext = crypto.decrypt_callback(params["msg_signature"], params["timestamp"], params["nonce"], body)
        fields = parse_callback_message(plaintext)
    except WeComCryptoError as exc:
        return _reject(403 if exc.code == WeComCryptoError.VALIDATE_SIGNATURE else 400, exc.reason,
                       app=app.pk, code=exc.code)
    except MalformedMessage as exc:
        return _reject(400, f"malformed message: {exc.reason}", app=app.pk)
    if fields.get("ToUserName") and fields["ToUserName"] != app.corp_id:
        return _reject(400, "ToUserName is not this app's CorpID", app=app.pk)
    if not fields.get("MsgType"):
        return _reject(400, "message has no MsgType", app=app.pk)

    try:
        recorded = record_callback_message(app=app, fields=fields)
    except (OperationalError, InterfaceError):
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    except DatabaseError:
        return _reject(400, "message could not be stored as given", app=app.pk)
    annotate_span(trace_id=recorded.inbound.trace_id)  # the request's span leads to the message's timeline
    return HttpResponse(b"", status=200)
