"""Per-tenant circuit breaker around the AI provider, its state shared by every process through Redis.

pybreaker runs the state machine with its CircuitRedisStorage under `<schema>:ai:breaker:pybreaker:*`:
closed → open after `breaker_fail_max` consecutive failures (timeouts included) → half-open once
`breaker_reset_timeout_seconds` have passed → closed after one successful probe, or open again
(a fresh recovery time) if the probe fails. Six additions, each for a reason:

1. A breaker object per call. pybreaker holds a per-object lock for the whole guarded call, so one
   shared object would serialise every AI call of a tenant within a process.
2. `opened_at` with sub-second precision. Upstream stores whole seconds, so the recovery time could
   end almost a second early.
3. One probe at a time across all processes. In half-open, pybreaker lets through every call that
   reaches it (serialised per object, unlimited across processes); a Redis permit (SET NX PX,
   expiring after the provider timeout) admits a single probe and the others fail fast.
4. Fail open without Redis. If Redis cannot be reached the call goes to the provider unguarded
   (logged): Redis may be lost at any moment, and that must not stop answers.
5. One clock. pybreaker reads `datetime.now()` when it opens the breaker and when it checks the
   recovery time; here both read the module's `clock` (wall time; tests replace it to move time
   without sleeping).
6. A fast path. Closed with no failure counted (one MGET), a success has nothing to write: the call goes out
   without pybreaker, which is built only to count a failure. Every model call of a round paid its four or
   five Redis commands before (bench/pipeline.py --profile).

The Redis client uses bytes responses: CircuitRedisStorage decodes values itself and breaks with
`decode_responses=True`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import structlog
from django.db import connection
from django_tenants.utils import get_public_schema_name
from redis.exceptions import RedisError

from conversations.ai.llm import LLMError
from tenants.keys import redis_key
from tenants.redis import redis_client

logger = structlog.get_logger("conversations.ai")

T = TypeVar("T")

STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
# The probe permit outlives the probe's own timeout a little, in case the prober dies mid-call.
PROBE_GRACE_SECONDS = 5.0
# HTTP statuses that say "this request was bad", not "the provider is down": the breaker counts
# them as the provider working (pybreaker treats excluded errors as successes).
REQUEST_SPECIFIC_STATUSES = frozenset({400, 413, 422})


class BreakerOpen(LLMError):
    """The tenant's breaker refused the call (open, or half-open with a probe in flight); nothing was sent."""

    def __init__(self, schema: str, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.schema = schema
        self.retry_after = retry_after


# The breaker's time in seconds since the epoch: when it opened, whether the recovery time has
# passed. Wall time, shared by every process through the stored opening time. Tests replace it.
clock: Callable[[], float] = time.time


# -- Redis --------------------------------------------------------------------------------------------
# The shared client (tenants.redis) has the short timeouts the breaker needs: a Redis that does not
# answer must fail the breaker open within a few seconds, not hold the AI call.


def breaker_namespace(schema: str) -> str:
    return redis_key("ai", "breaker", schema=schema)


def _storage_key(schema: str, name: str) -> str:
    return f"{breaker_namespace(schema)}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:{name}"


def _probe_key(schema: str) -> str:
    return redis_key("ai", "breaker", "probe", schema=schema)


class TenantBreakerStorage(pybreaker.CircuitRedisStorage):
    """CircuitRedisStorage keeping opened_at as a float timestamp (upstream truncates to seconds), and
    writing its initial keys once per namespace and process rather than on every call (a breaker
    object is built per call: one EXISTS instead of 3 SETNX; keys lost later, e.g. Redis flushed,
    are written again)."""

    _initialised: set[str] = set()

    def _initialize_redis_state(self, state: str) -> None:
        if self._namespace_name in self._initialised and self._redis.exists(self._namespace("state")):
            return
        super()._initialize_redis_state(state)
        self._initialised.add(self._namespace_name)

    _SET_IF_LATER = (
        "local current = redis.call('GET', KEYS[1]) "
        "if (not current) or tonumber(ARGV[1]) > tonumber(current) then redis.call('SET', KEYS[1], ARGV[1]) end"
    )

    @property
    def opened_at(self) -> datetime | None:
        try:
            raw = self._redis.get(self._namespace("opened_at"))
        except RedisError:
            self.logger.exception("RedisError")
            return None
        return None if raw is None else datetime.fromtimestamp(float(raw), UTC)

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        # pybreaker passes its own datetime.now(); the breaker's clock stamps the opening instead,
        # the same clock _OpenState reads for the recovery time.
        try:
            self._redis.eval(self._SET_IF_LATER, 1, self._namespace("opened_at"), repr(clock()))
        except RedisError:
            self.logger.exception("RedisError")


class _OpenState(pybreaker.CircuitOpenState):
    """pybreaker's open state with the recovery time read on the breaker's clock, not datetime.now()."""

    def before_call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if _seconds_until_probe(self._breaker._state_storage, self._breaker.reset_timeout) > 0:
            raise pybreaker.CircuitBreakerError("Timeout not elapsed yet, circuit breaker still open")
        self._breaker.half_open()
        return self._breaker.call(func, *args, **kwargs)


class _TenantBreaker(pybreaker.CircuitBreaker):
    def _create_new_state(self, new_state: str, prev_state=None, notify: bool = False):
        if new_state == STATE_OPEN:
            return _OpenState(self, prev_state=prev_state, notify=notify)
        return super()._create_new_state(new_state, prev_state=prev_state, notify=notify)


class _StateChangeLog(pybreaker.CircuitBreakerListener):
    def __init__(self, schema: str):
        self.schema = schema

    def state_change(self, cb, old_state, new_state) -> None:
        logger.warning("ai.breaker.state_change", tenant=self.schema, old=getattr(old_state, "name", None),
                       new=new_state.name, fail_counter=cb.fail_counter)


def _request_specific(exc: BaseException) -> bool:
    # LLMBadResponse (chat) or conversations.ai.embeddings.EmbeddingRefused: both carry the HTTP status.
    return getattr(exc, "status_code", None) in REQUEST_SPECIFIC_STATUSES


def _tenant_schema(schema: str | None) -> str:
    schema = schema or connection.schema_name
    if not schema or schema == get_public_schema_name():
        raise ValueError(f"the AI circuit breaker is per tenant; no tenant schema (got {schema!r})")
    return schema


def _breaker(provider, schema: str) -> tuple[pybreaker.CircuitBreaker, TenantBreakerStorage]:
    storage = TenantBreakerStorage(STATE_CLOSED, redis_client(), namespace=breaker_namespace(schema))
    breaker = _TenantBreaker(
        fail_max=provider.breaker_fail_max,
        reset_timeout=provider.breaker_reset_timeout_seconds,
        exclude=[_request_specific],
        listeners=[_StateChangeLog(schema)],
        state_storage=storage,
        name=f"ai:{schema}",
        # The call that trips the breaker raises its own error (e.g. LLMTimeout), not a generic one.
        throw_new_error_on_trip=False,
    )
    return breaker, storage


def _seconds_until_probe(storage: TenantBreakerStorage, reset_timeout: float) -> float:
    opened_at = storage.opened_at
    if opened_at is None:
        return 0.0
    return max(0.0, opened_at.timestamp() + reset_timeout - clock())


# -- public API ---------------------------------------------------------------------------------------


def call_with_breaker(provider, func: Callable[..., T], *args: Any, schema: str | None = None, **kwargs: Any) -> T:
    """func(*args, **kwargs) guarded by the tenant's breaker (the current schema unless `schema` is given).

    Every exception of func counts as a failure, except LLMBadResponse 400/413/422 (a bad request,
    not a failing provider). Raises BreakerOpen without calling func while the breaker is open,
    or while another process holds the half-open probe.
    """
    schema = _tenant_schema(schema)
    try:
        closed_and_clean = _closed_without_failures(schema)
    except RedisError as exc:
        logger.warning("ai.breaker.unavailable", tenant=schema, error=type(exc).__name__)
        return func(*args, **kwargs)
    if closed_and_clean:
        # The common case, one MGET: nothing to count on success (the counter is already 0), so pybreaker and
        # its four or five Redis commands are needed only when the call fails.
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if _request_specific(exc):
                raise
            _count_failure(provider, schema, exc)
            raise
    try:
        breaker, storage = _breaker(provider, schema)
        state = storage.state
        probe = state == STATE_HALF_OPEN or (
            state == STATE_OPEN and _seconds_until_probe(storage, breaker.reset_timeout) == 0
        )
    except RedisError as exc:
        logger.warning("ai.breaker.unavailable", tenant=schema, error=type(exc).__name__)
        return func(*args, **kwargs)

    permit = _take_probe_permit(schema, ttl=float(provider.timeout_seconds) + PROBE_GRACE_SECONDS) if probe else None
    if permit is False:
        raise BreakerOpen(schema, "circuit half-open: a probe call is already in flight",
                          retry_after=float(provider.timeout_seconds))
    try:
        return breaker.call(func, *args, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise BreakerOpen(schema, f"circuit open: {exc}",
                          retry_after=_seconds_until_probe(storage, breaker.reset_timeout)) from None
    finally:
        if permit:
            _release_probe_permit(schema, permit)


def _closed_without_failures(schema: str) -> bool:
    """Closed (or never used) with no failure counted since the last success. A success elsewhere meanwhile
    changes nothing; a failure elsewhere meanwhile is not reset by this call's success, so "consecutive" failures
    are counted across the tenant's processes a little more strictly than pybreaker alone would."""
    state, fails = redis_client().mget([_storage_key(schema, "state"), _storage_key(schema, "fail_counter")])
    return (state is None or state.decode() == STATE_CLOSED) and int(fails or 0) == 0


def _count_failure(provider, schema: str, exc: Exception) -> None:
    """Hand a failure of the fast path to pybreaker, which counts it and opens the breaker at fail_max."""
    def fail():
        raise exc

    try:
        breaker, _ = _breaker(provider, schema)
        breaker.call(fail)
    except RedisError as error:
        logger.warning("ai.breaker.unavailable", tenant=schema, error=type(error).__name__)
    except Exception:  # noqa: BLE001, S110 - the failure itself (or a refusal): the caller re-raises it
        pass


def _take_probe_permit(schema: str, *, ttl: float) -> str | bool | None:
    """A token if this caller may probe, False if another caller holds the permit, None without Redis."""
    token = secrets.token_hex(8)
    try:
        return token if redis_client().set(_probe_key(schema), token, nx=True, px=int(ttl * 1000)) else False
    except RedisError:
        return None


_RELEASE_IF_OWNER = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _release_probe_permit(schema: str, token: str) -> None:
    try:
        redis_client().eval(_RELEASE_IF_OWNER, 1, _probe_key(schema), token)
    except RedisError:
        pass  # the permit expires on its own


def breaker_state(schema: str) -> dict:
    """{"state": "closed"|"open"|"half-open"|"unknown", "fail_counter", "opened_at", "probe_in_flight"}.

    The stored state: an open breaker whose recovery time has passed still reads "open" until
    the next call probes. "unknown" (and None values) when Redis cannot be reached.
    """
    names = ("state", "fail_counter", "opened_at")
    try:
        state, fails, opened = redis_client().mget([_storage_key(schema, name) for name in names])
        probe = bool(redis_client().exists(_probe_key(schema)))
    except RedisError:
        return {"state": "unknown", "fail_counter": None, "opened_at": None, "probe_in_flight": None}
    return {
        "state": state.decode() if state else STATE_CLOSED,
        "fail_counter": int(fails or 0),
        "opened_at": datetime.fromtimestamp(float(opened), UTC) if opened else None,
        "probe_in_flight": probe,
    }


def reset_breaker(schema: str) -> None:
    """Close the tenant's breaker now (counters to zero, no probe pending), e.g. after fixing the provider."""
    schema = _tenant_schema(schema)
    with redis_client().pipeline(transaction=True) as pipe:
        pipe.set(_storage_key(schema, "state"), STATE_CLOSED)
        pipe.set(_storage_key(schema, "fail_counter"), 0)
        pipe.set(_storage_key(schema, "success_counter"), 0)
        pipe.delete(_storage_key(schema, "opened_at"), _probe_key(schema))
        pipe.execute()
    logger.warning("ai.breaker.reset", tenant=schema)
