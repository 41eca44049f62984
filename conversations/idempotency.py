"""The Idempotency-Key of a send through the API (docs/API.md, "Sending a message"): one row per key and
caller, so a retried request returns the message of the first one instead of sending twice. Tenant schema.

The row is inserted before anything else of the send, in the send's transaction: a concurrent retry's INSERT
waits on the unique index until the first transaction ends, then finds the row (committed: replay) or none
(rolled back, e.g. refused: it sends itself). The ledger rows carry the same key as their cause, so even a
path that skipped this table could not create a second delivery.
"""

from __future__ import annotations

from django.db import models


class IdempotentSend(models.Model):
    # "api:k<api key id>:<sha256 of the header>" (or "api:u<user id>:..." for a signed-in staff user).
    key = models.CharField(max_length=100, unique=True)
    # sha256 of what was asked (conversation and text): the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    # Null only inside the transaction that creates the message; deleting the message frees the key.
    message = models.ForeignKey("conversations.Message", null=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "idempotent API send"

    def __str__(self) -> str:
        return self.key
