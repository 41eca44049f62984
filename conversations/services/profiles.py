"""Customer profiles from WeCom: the name and avatar of who is writing, cached on the contact.

1. `request_profile_refresh` (the conversation screen, the scheduler's sweep): a contact whose profile is
   missing or stale gets a job, at most one queued at a time (a mark in Redis). Nothing is fetched on the
   caller's path: not on a web request, not on the message path.
2. `refresh_profiles` (the job): 微信客服 customers through kf/customer/batchget, up to 100 a call; a self-built
   app's members through user/get, one a call. The answer replaces the name and the avatar (WeCom's URL, kept
   as such); a refusal or an outage keeps the old profile and records why and when (shown on the profile
   panel, logged), and the next try waits RETRY_AFTER. Screens watching the contact's conversation are told.
3. `contacts_due_in_service` (the sweep): contacts of conversations with humans whose profile is due.

WeCom's limits shape it: batchget answers only for customers who wrote or entered a session in the last 48
hours (the others come back in invalid_external_userid), which is why the refresh runs while a customer is
being served; user/get gives self-built apps created after 2022-06-20 the name but no avatar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

import structlog
from django.db.models import Q, QuerySet
from django.utils import timezone
from redis.exceptions import RedisError

from conversations.jobs import enqueue_profile_refresh
from conversations.models import Contact, Conversation, WeComApp
from conversations.realtime import conversation_changed
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComError
from tenants.keys import redis_key
from tenants.redis import redis_client

logger = structlog.get_logger("conversations.profiles")

# A fetched profile is good for a day (nicknames and avatars change rarely); a failed fetch is tried again
# after a quarter of an hour, so a WeCom outage or refusal costs one call per contact per RETRY_AFTER.
PROFILE_TTL = timedelta(hours=24)
RETRY_AFTER = timedelta(minutes=15)
# While a contact's job is queued, no other is: page loads and sweeps within this time enqueue nothing.
QUEUED_MARK_SECONDS = 120
KF_BATCH_SIZE = 100  # kf/customer/batchget's most ids per call
# One job asks user/get for at most this many members (one call each): the rest wait for the next sweep,
# so a large backlog never floods WeCom's per-app frequency limit.
MEMBER_CALLS_PER_JOB = 50
# What the sweep picks up at most per run (in jobs of KF_BATCH_SIZE).
SWEEP_LIMIT = 500
NAME_MAX_LENGTH = Contact._meta.get_field("display_name").max_length
AVATAR_MAX_LENGTH = Contact._meta.get_field("avatar_url").max_length
ERROR_MAX_LENGTH = Contact._meta.get_field("profile_error").max_length
# Not an errcode: batchget's invalid_external_userid (no message or session in 48 hours).
NOT_IN_WINDOW = "invalid_external_userid: no message or session in the last 48 hours"


def profile_due(contact: Contact, now: datetime) -> bool:
    """Never asked, the last profile older than PROFILE_TTL, or the last failure older than RETRY_AFTER."""
    if contact.profile_checked_at is None:
        return True
    wait = RETRY_AFTER if contact.profile_error else PROFILE_TTL
    return now - contact.profile_checked_at >= wait


def _due_filter(now: datetime) -> Q:
    """profile_due() as a query."""
    return (Q(profile_checked_at__isnull=True)
            | Q(profile_error="", profile_checked_at__lte=now - PROFILE_TTL)
            | (~Q(profile_error="") & Q(profile_checked_at__lte=now - RETRY_AFTER)))


def request_profile_refresh(*, contact: Contact, now: datetime | None = None) -> bool:
    """Queue a refresh of a due contact's profile (after commit), unless one is queued; True if queued."""
    if not profile_due(contact, now or timezone.now()) or not contact.app.is_enabled:
        return False
    if not _mark_queued([contact.pk]):
        return False
    enqueue_profile_refresh([contact.pk])
    return True


def _mark_queued(contact_ids: list[int]) -> list[int]:
    """The ids not marked yet, marked now. Without Redis, all of them: a duplicate job only finds them done."""
    fresh = []
    for contact_id in contact_ids:
        try:
            if redis_client().set(redis_key("profiles", "queued", contact_id), 1, nx=True, ex=QUEUED_MARK_SECONDS):
                fresh.append(contact_id)
        except RedisError:
            fresh.append(contact_id)
    return fresh


def contacts_due_in_service(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> QuerySet[Contact]:
    """Contacts talking to humans (waiting or served) whose profile is due, of enabled apps."""
    now = now or timezone.now()
    with_humans = Conversation.objects.filter(
        state__in=[Conversation.State.WAITING_HUMAN, Conversation.State.HUMAN]).values("contact_id")
    return (Contact.objects.filter(pk__in=with_humans, app__is_enabled=True).filter(_due_filter(now))
            .order_by("pk")[:limit])


def sweep_due_profiles(*, now: datetime | None = None) -> int:
    """Queue the due profiles of contacts with humans, KF_BATCH_SIZE a job; how many were queued."""
    ids = _mark_queued(list(contacts_due_in_service(now=now).values_list("pk", flat=True)))
    for start in range(0, len(ids), KF_BATCH_SIZE):
        enqueue_profile_refresh(ids[start:start + KF_BATCH_SIZE])
    return len(ids)


@dataclass
class RefreshResult:
    """What one job did: contacts whose profile was saved, and those whose refresh failed (with why)."""

    refreshed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def refresh_profiles(*, contact_ids: list[int], now: datetime | None = None) -> RefreshResult:
    """Fetch the due profiles among `contact_ids` from WeCom (a redelivered job finds them fresh: no call)."""
    now = now or timezone.now()
    contacts = [contact for contact in Contact.objects.select_related("app").filter(pk__in=contact_ids,
                                                                                   app__is_enabled=True)
                .order_by("app_id", "pk") if profile_due(contact, now)]
    result = RefreshResult()
    for _app_id, group in groupby(contacts, key=lambda contact: contact.app_id):
        group = list(group)
        app = group[0].app
        if app.kind == WeComApp.Kind.KF:
            for start in range(0, len(group), KF_BATCH_SIZE):
                _refresh_kf_customers(app, group[start:start + KF_BATCH_SIZE], now, result)
        else:
            for contact in group[:MEMBER_CALLS_PER_JOB]:
                _refresh_member(app, contact, now, result)
    return result


def _refresh_kf_customers(app: WeComApp, contacts: list[Contact], now: datetime, result: RefreshResult) -> None:
    ids = list(dict.fromkeys(contact.external_id for contact in contacts))
    try:
        answer = WeComClient(app).kf_customer_batchget(external_userids=ids)
    except WeComError as exc:
        for contact in contacts:
            _failed(contact, exc, now, result)
        return
    found = {row.get("external_userid"): row for row in answer.get("customer_list") or [] if isinstance(row, dict)}
    for contact in contacts:
        row = found.get(contact.external_id)
        if row is None:  # in invalid_external_userid (or left out): WeCom gives nothing for them now
            _failed(contact, None, now, result, reason=NOT_IN_WINDOW)
        else:
            _saved(contact, name=row.get("nickname"), avatar=row.get("avatar"), now=now, result=result)


def _refresh_member(app: WeComApp, contact: Contact, now: datetime, result: RefreshResult) -> None:
    try:
        answer = WeComClient(app).user_get(userid=contact.external_id)
    except WeComError as exc:
        _failed(contact, exc, now, result)
        return
    # No "avatar" key at all for apps created after 2022-06: the old avatar (if any) stays.
    _saved(contact, name=answer.get("name"), avatar=answer.get("avatar"), now=now, result=result)


def _saved(contact: Contact, *, name, avatar, now: datetime, result: RefreshResult) -> None:
    """Store what WeCom gave; a field it left empty or out keeps its old value. Only the profile's columns
    are written, so notes and attributes saved meanwhile (the API, an agent) are never overwritten."""
    fields = {"profile_fetched_at": now, "profile_checked_at": now, "profile_error": ""}
    if isinstance(name, str) and name.strip():
        fields["display_name"] = name.strip()[:NAME_MAX_LENGTH]
    if isinstance(avatar, str) and avatar.startswith(("https://", "http://")) and len(avatar) <= AVATAR_MAX_LENGTH:
        fields["avatar_url"] = avatar
    Contact.objects.filter(pk=contact.pk).update(**fields)
    result.refreshed.append(contact.pk)
    logger.info("profiles.refreshed", contact=contact.pk, app=contact.app_id, avatar="avatar_url" in fields)
    _tell_screens(contact)


def _failed(contact: Contact, exc: WeComError | None, now: datetime, result: RefreshResult, *,
            reason: str = "") -> None:
    """The old profile stays; why it could not be refreshed is kept, logged and shown."""
    if exc is not None:
        reason = f"errcode {exc.errcode}: {exc.errmsg}" if exc.errcode is not None else exc.errmsg
    reason = reason[:ERROR_MAX_LENGTH]
    Contact.objects.filter(pk=contact.pk).update(profile_checked_at=now, profile_error=reason)
    result.failed[contact.pk] = reason
    logger.warning("profiles.refresh_failed", contact=contact.pk, app=contact.app_id,
                   errcode=exc.errcode if exc is not None else None, reason=reason,
                   transient=bool(exc is not None and exc.transient))
    _tell_screens(contact)


def _tell_screens(contact: Contact) -> None:
    for conversation_id in (Conversation.objects.filter(contact_id=contact.pk)
                            .exclude(state=Conversation.State.CLOSED).values_list("pk", flat=True)):
        conversation_changed(conversation_id, {"type": "profile"})
