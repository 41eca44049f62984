"""REST API keys of a tenant: random, shown once, stored as a SHA-256 hash (high-entropy keys need no slow hash)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.utils import timezone

from conversations.models import ApiKey


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(*, name: str) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key (the only time it exists outside the caller)."""
    prefix = secrets.token_hex(4)
    key = f"wd_{prefix}_{secrets.token_urlsafe(32)}"
    return ApiKey.objects.create(name=name, prefix=prefix, key_hash=_hash(key)), key


def authenticate_api_key(key: str) -> ApiKey | None:
    """The active key of the current tenant schema matching `key`, else None."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "wd":
        return None
    api_key = ApiKey.objects.filter(prefix=parts[1], is_active=True).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(key)):
        return None
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return api_key
