"""Messages an integrator sends to a contact through the API (docs/API.md, "Sending a message").

1. `send_from_api`: claim the Idempotency-Key (conversations/idempotency.py), first thing in the transaction;
   a key already used by the same caller returns its message (a replay), or is refused when the request differs.
2. The contact's current conversation, locked: the one addressed if it is still open, else a new one (a closed
   conversation is history; the customer is still reachable), so concurrent sends to one customer queue up;
   a conversation opened at the same moment by someone else is used rather than refused.
3. What WeCom would refuse is refused up front with a code (the 微信客服 48-hour window and 5 replies per customer
   message, services/reply_limits.py; a disabled app; an account answered in the WeCom client).
4. The transcript line (author `api`, which the agent screens show as it is) and its ledger rows, keyed by the
   Idempotency-Key when there is one: the outbound ledger delivers them like an agent's reply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from conversations.idempotency import IdempotentSend
from conversations.models import AccountStatus, Contact, Conversation, DeskSettings, Message
from conversations.services import sensitive_words
from conversations.services.conversations import current_conversation, record_message
from conversations.services.outbound import queue_outbound, split_text
from conversations.services.reply_limits import Refusal, reply_allowance


class SendRefused(Exception):
    """WeCom would not deliver this message now (or the app may not send); `code` says which rule."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class IdempotencyKeyReused(Exception):
    """The caller used this Idempotency-Key for another request."""


REFUSALS = {
    Refusal.NO_CUSTOMER_MESSAGE: gettext_lazy("The customer has not written yet: 微信客服 only lets us reply to a "
                                       "customer's message."),
    Refusal.WINDOW_CLOSED: gettext_lazy("More than 48 hours have passed since the customer's last message; "
                                 "WeCom refuses replies until the customer writes again."),
    Refusal.NO_REPLIES_LEFT: gettext_lazy("The 5 replies WeCom allows per customer message are used up; "
                                   "wait for the customer to write again."),
}


@dataclass(frozen=True, kw_only=True)
class IdempotencyClaim:
    key: str  # "api:k<api key id>:<sha256 of the header>", also the cause of the ledger rows
    fingerprint: str  # of the request: conversation and text

    @classmethod
    def of(cls, *, caller: str, header: str, conversation_id: int, text: str) -> IdempotencyClaim:
        """`caller`: "k<api key id>" or "u<user id>"; a key is the caller's own, never shared."""
        digest = hashlib.sha256(header.encode()).hexdigest()
        request = json.dumps({"conversation": conversation_id, "text": text}, ensure_ascii=False, sort_keys=True)
        return cls(key=f"api:{caller}:{digest}", fingerprint=hashlib.sha256(request.encode()).hexdigest())


@dataclass(frozen=True, kw_only=True)
class ApiSend:
    message: Message
    replayed: bool  # an earlier request with the same Idempotency-Key sent it


def send_from_api(*, conversation_id: int, text: str, claim: IdempotencyClaim | None = None) -> ApiSend:
    """Send `text` to the contact of the conversation (which the caller has accessed in this tenant)."""
    text = text.strip()
    if words := sensitive_words.found(text):  # never sent, whoever asks (services/sensitive_words.py)
        raise SendRefused("sensitive_words", _("Not sent: the text contains sensitive words (%(words)s).")
                          % {"words": "、".join(words)})
    with transaction.atomic():
        if claim is not None:
            earlier = claim_key(claim)
            if earlier is not None:
                if earlier.fingerprint != claim.fingerprint:
                    raise IdempotencyKeyReused
                return ApiSend(message=earlier.message, replayed=True)
        contact = Conversation.objects.select_related("contact__app").get(pk=conversation_id).contact
        conversation = _open_conversation(contact)
        _require_sendable(conversation, parts=len(split_text(text)))
        message = record_message(conversation=conversation, author=Message.Author.API, text=text)
        queue_outbound(contact=contact, conversation=conversation, message=message, author=Message.Author.API,
                       text=text, cause=claim.key if claim else f"api:{message.pk}")
        if claim is not None:
            IdempotentSend.objects.filter(key=claim.key).update(message=message)
    return ApiSend(message=message, replayed=False)


def claim_key(claim: IdempotencyClaim) -> IdempotentSend | None:
    """None when the key is ours now; else the earlier send under it. A concurrent request holding the key
    makes the INSERT wait on the unique index until it commits (its send is then returned) or rolls back."""
    try:
        with transaction.atomic():  # a savepoint: the conflict must not abort the whole transaction
            IdempotentSend.objects.create(key=claim.key, fingerprint=claim.fingerprint)
    except IntegrityError:
        return IdempotentSend.objects.select_related("message").get(key=claim.key)
    return None


def _open_conversation(contact: Contact) -> Conversation:
    """The contact's open conversation, locked; a new one when none is open (or the open one went idle).
    Another transaction may be opening one at the same moment (the answering round, a 微信客服 event,
    another send): our INSERT then waits for it and fails on the one-open-conversation constraint, so
    the attempt is a savepoint and the second finds the conversation the other committed."""
    try:
        with transaction.atomic():
            return current_conversation(contact=contact, desk=DeskSettings.current())
    except IntegrityError:
        return current_conversation(contact=contact, desk=DeskSettings.current())


def _require_sendable(conversation: Conversation, *, parts: int) -> None:
    app = conversation.contact.app
    if not app.is_enabled:
        raise SendRefused("app_disabled", _("The WeCom app of this contact is disabled."))
    if app.account_status != AccountStatus.ACTIVE:
        raise SendRefused("account_unavailable", _("WeCom does not let us send through this app now: %(status)s.")
                          % {"status": app.get_account_status_display()})
    if app.answered_in_wecom_client:
        raise SendRefused("answered_in_wecom_client", _("This contact is answered by WeCom servicers in the WeCom "
                                                        "client; WeCom refuses messages from the API."))
    allowance = reply_allowance(contact=conversation.contact, parts=parts)
    if allowance.refusal is not None:
        raise SendRefused(allowance.refusal.value, str(REFUSALS[allowance.refusal]))
