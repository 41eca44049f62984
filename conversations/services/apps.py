"""Connecting WeCom apps and 微信客服 accounts: validation shared by the admin, the command and the API."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from conversations.models import APP_COPIES, WeComApp
from conversations.wecom.crypto import validate_encoding_aes_key

CORP_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
OPEN_KFID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
TOKEN = re.compile(r"^[A-Za-z0-9]{1,32}$")


def enabled_app_for_callback(callback_id: str) -> WeComApp | None:
    """The enabled app a callback URL names, with its secrets decrypted: this process's copy while none of the
    tenant's apps changed (APP_COPIES, tenants/versioned_cache.py), else a query. Shared by the requests of the
    process: read it, never change it."""
    return APP_COPIES.get(("callback", callback_id),
                          lambda: WeComApp.objects.filter(callback_id=callback_id, is_enabled=True).first())


def validate_app_fields(*, kind: str, corp_id: str, agent_id, open_kfids, secret: str, token: str,
                        encoding_aes_key: str) -> dict[str, str]:
    """Return {field: message} for everything wrong (empty when the app is valid)."""
    errors: dict[str, str] = {}
    if kind not in WeComApp.Kind.values:
        errors["kind"] = "kind must be 'app' (self-built app) or 'kf' (微信客服)."
    if not CORP_ID.match(corp_id or ""):
        errors["corp_id"] = "CorpID is required: 4-64 letters, digits, '-' or '_' (e.g. ww1436e0e65a779aee)."
    if kind == WeComApp.Kind.APP:
        if agent_id in (None, "") or not str(agent_id).isdigit():
            errors["agent_id"] = "AgentID is required for a self-built app and must be a number."
    if kind == WeComApp.Kind.KF:
        if not open_kfids or not all(isinstance(k, str) and OPEN_KFID.match(k) for k in open_kfids):
            errors["open_kfids"] = "List at least one open_kfid (letters, digits, '-' or '_')."
    if not secret:
        errors["secret"] = "Secret is required."
    if not TOKEN.match(token or ""):
        errors["token"] = "Token is required: up to 32 letters or digits, as set in the WeCom console."
    try:
        validate_encoding_aes_key(encoding_aes_key or "")
    except ValueError as exc:
        errors["encoding_aes_key"] = str(exc) + "."
    return errors


def create_wecom_app(*, name: str, kind: str, corp_id: str, agent_id=None, open_kfids=None,
                     secret: str, token: str, encoding_aes_key: str) -> WeComApp:
    open_kfids = list(open_kfids or [])
    errors = validate_app_fields(kind=kind, corp_id=corp_id, agent_id=agent_id, open_kfids=open_kfids,
                                 secret=secret, token=token, encoding_aes_key=encoding_aes_key)
    if kind == WeComApp.Kind.APP and "agent_id" not in errors and WeComApp.objects.filter(
            kind=kind, corp_id=corp_id, agent_id=int(agent_id)).exists():
        errors["agent_id"] = f"App {corp_id}/{agent_id} is already connected."
    if errors:
        raise ValidationError(errors)
    return WeComApp.objects.create(
        name=name or f"{kind} {corp_id}", kind=kind, corp_id=corp_id,
        agent_id=int(agent_id) if kind == WeComApp.Kind.APP else None,
        open_kfids=open_kfids if kind == WeComApp.Kind.KF else [],
        secret=secret, token=token, encoding_aes_key=encoding_aes_key,
    )


def set_app_enabled(*, app_id: int, enabled: bool) -> WeComApp:
    """Turn an app on or off: a disabled app's callbacks are refused (WeCom retries, then gives up), its
    微信客服 accounts are not pulled, and the API sends nothing through it."""
    WeComApp.objects.filter(pk=app_id).update(is_enabled=enabled)
    return WeComApp.objects.get(pk=app_id)
