"""Secrets at rest: a model field encrypted with a rotatable key ring (Fernet keys, newest first).

`cryptography`'s MultiFernet does the work: new writes use the first key, reads try
every key, so rotating is "prepend a new key, run `manage.py wecom rotate-keys`,
then drop the old key".
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def key_ring() -> MultiFernet:
    keys = settings.FIELD_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must hold at least one Fernet key.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds a key that is not a Fernet key.") from exc


def derive_dev_key(secret: str) -> str:
    """A deterministic Fernet key for development and tests only (production sets real keys)."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"field-encryption:{secret}".encode()).digest()).decode()


def encrypt(value: str) -> str:
    return key_ring().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return key_ring().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS."
        ) from exc


def reencrypt(token: str) -> str:
    """The same secret under the newest key (for key rotation)."""
    return key_ring().rotate(token.encode()).decode()


def mask(value: str | None) -> str:
    """What the admin and the API show of a secret: never the secret itself."""
    if not value:
        return "(not set)"
    return "•" * 8 + (value[-4:] if len(value) >= 16 else "")


class EncryptedTextField(models.TextField):
    """Stores Fernet ciphertext; Python code sees the plaintext string."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt(value)
