"""REST API keys of a tenant: random, shown once, stored as a SHA-256 hash (high-entropy keys need no slow hash).

A key carries its scopes, an optional expiry and its request rate (docs/API.md, "Authentication"). Creating,
changing and revoking a key are recorded in the audit log with who did it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations.models import ApiKey
from conversations.scopes import ALL_SCOPES, API_KEY_DEFAULT_RATE_PER_MINUTE, normalized_scopes
from conversations.services.audit import record

# last_used_at is written at most this often per key: a busy integration costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyExpired(Exception):
    def __init__(self, api_key: ApiKey):
        super().__init__(f"API key {api_key.prefix} expired at {api_key.expires_at.isoformat()}")
        self.api_key = api_key


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(*, name: str, scopes: Iterable[str] = ALL_SCOPES, expires_at: datetime | None = None,
                   throttle_per_minute: int = API_KEY_DEFAULT_RATE_PER_MINUTE, actor: str = "") -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key (the only time it exists outside the caller).

    `scopes` default to every family, read and write, as keys had before scopes existed; the admin always
    passes the operator's choice. `actor` ("user:<username>") records the creation in the audit log.
    """
    prefix = secrets.token_hex(4)
    key = f"wd_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        api_key = ApiKey.objects.create(name=name, prefix=prefix, key_hash=_hash(key), scopes=normalized_scopes(scopes),
                                        expires_at=expires_at, throttle_per_minute=throttle_per_minute)
        if actor:
            record(actor=actor, action="api_key.create", target=f"apikey:{api_key.pk}", detail=_described(api_key))
    return api_key, key


def update_api_key(*, api_key: ApiKey, actor: str, name: str, scopes: Iterable[str], expires_at: datetime | None,
                   throttle_per_minute: int, is_active: bool) -> ApiKey:
    with transaction.atomic():
        api_key.name, api_key.scopes, api_key.expires_at = name, normalized_scopes(scopes), expires_at
        api_key.throttle_per_minute, api_key.is_active = throttle_per_minute, is_active
        api_key.save(update_fields=["name", "scopes", "expires_at", "throttle_per_minute", "is_active"])
        record(actor=actor, action="api_key.update", target=f"apikey:{api_key.pk}", detail=_described(api_key))
    return api_key


def revoke_api_keys(*, ids: Iterable[int], actor: str) -> int:
    """Deactivate the keys (they are refused from the next request on); returns how many were active."""
    with transaction.atomic():
        revoked = list(ApiKey.objects.select_for_update().filter(pk__in=list(ids), is_active=True).order_by("pk"))
        ApiKey.objects.filter(pk__in=[api_key.pk for api_key in revoked]).update(is_active=False)
        for api_key in revoked:
            record(actor=actor, action="api_key.revoke", target=f"apikey:{api_key.pk}",
                   detail={"name": api_key.name, "prefix": api_key.prefix})
    return len(revoked)


def authenticate_api_key(key: str) -> ApiKey | None:
    """The active key of the current tenant schema matching `key`, else None; ApiKeyExpired past its expiry."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "wd":
        return None
    api_key = ApiKey.objects.filter(prefix=parts[1], is_active=True).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(key)):
        return None
    now = timezone.now()
    if api_key.is_expired(now):
        raise ApiKeyExpired(api_key)
    if api_key.last_used_at is None or api_key.last_used_at <= now - LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests of one key write it once, not once each.
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)).update(last_used_at=now)
    return api_key


def _described(api_key: ApiKey) -> dict:
    """What the audit log keeps of a key: never its hash."""
    return {"name": api_key.name, "prefix": api_key.prefix, "scopes": api_key.scopes, "is_active": api_key.is_active,
            "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
            "throttle_per_minute": api_key.throttle_per_minute}
