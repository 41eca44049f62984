"""Three-tier rate limits (customer, tenant, platform) as moving windows in Redis.

A customer over their limit (`limits`' moving window) is answered once per window with the
tenant's notice. The tenant and platform tiers never drop work, they defer it (the job comes back
for the rest later); a round is admitted against both by one Redis script that checks and counts
them at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from redis.commands.core import Script

from conversations.models import Contact, DeskSettings
from tenants.keys import redis_key
from tenants.redis import rate_limiter, redis_client


@dataclass(frozen=True)
class CustomerVerdict:
    allowed: bool
    send_notice: bool = False


def _window(count: int, seconds: int):
    return RateLimitItemPerSecond(count, seconds)


@dataclass(frozen=True)
class Admission:
    """How many of the wanted messages the shared tiers admit now; the tier holding back the rest."""

    count: int
    tier: str = ""
    retry_after: float = 0.0


# Checks the platform and the tenant window and counts what both admit, in one step: Redis runs a
# script alone, so no other round can count between the check and the hit (a read, then a hit,
# let concurrent rounds pass both limits). `limits` cannot do this itself: its atomic
# MovingWindowRateLimiter.hit(cost=n) is all-or-nothing and covers one window, and a hit counted
# in the platform window cannot be taken back when the tenant window then refuses it.
#
# The windows keep `limits`' layout (a list of entry timestamps, newest first, trimmed to the
# limit, under the key `limits` would use), so its own readers (get_window_stats) still see them.
# The time is Redis' own (TIME; Redis >= 5 replicates scripts by effect), one clock for every
# process and host sharing the window, which also keeps each list in timestamp order.
ADMIT_SHARED_TIERS_LUA = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local wanted = tonumber(ARGV[1])

-- How many entries of the window (newest first) are at or after `since`: a binary search,
-- as `limits`' own moving_window.lua.
local function used(key, limit, since)
    local low, high, count = 0, limit - 1, 0
    while low <= high do
        local mid = math.floor((low + high) / 2)
        local entry = tonumber(redis.call('LINDEX', key, mid))
        if entry and entry >= since then
            count = mid + 1
            low = mid + 1
        else
            high = mid - 1
        end
    end
    return count
end

local admitted, holding, retry_after = wanted, 0, 0
for tier = 1, #KEYS do
    local limit, expiry = tonumber(ARGV[2 * tier]), tonumber(ARGV[2 * tier + 1])
    local in_window = used(KEYS[tier], limit, now - expiry)
    if limit - in_window < admitted then
        admitted, holding = math.max(limit - in_window, 0), tier
        -- The next place frees when the oldest entry in the window leaves it.
        local oldest = now
        if in_window > 0 then oldest = tonumber(redis.call('LINDEX', KEYS[tier], in_window - 1)) end
        retry_after = oldest + expiry - now
    end
end

if admitted > 0 then
    local entries = {}
    for i = 1, admitted do entries[i] = tostring(now) end
    for tier = 1, #KEYS do
        local limit, expiry = tonumber(ARGV[2 * tier]), tonumber(ARGV[2 * tier + 1])
        for i = 1, #entries, 5000 do  -- unpack() has a stack limit
            redis.call('LPUSH', KEYS[tier], unpack(entries, i, math.min(i + 4999, #entries)))
        end
        redis.call('LTRIM', KEYS[tier], 0, limit - 1)
        redis.call('EXPIRE', KEYS[tier], expiry)
    end
end
-- A Lua number becomes an integer reply: the fraction travels as a string.
return {admitted, holding, tostring(retry_after)}
"""
# The tiers in the order the script checks them; on a tie the first one is reported as holding.
SHARED_TIERS = ("platform", "tenant")
# The shortest wait reported, so a deferred job never comes back in a busy loop.
MIN_RETRY_AFTER_SECONDS = 0.2


@cache
def _admit_shared_tiers_script(client: redis.Redis) -> Script:
    return client.register_script(ADMIT_SHARED_TIERS_LUA)


def _window_key(item: RateLimitItem, *identifiers: str) -> str:
    return rate_limiter().storage.prefixed_key(item.key_for(*identifiers))


def admit_shared_tiers(*, desk: DeskSettings, wanted: int) -> Admission:
    """Count up to `wanted` messages against the platform and tenant tiers, as many as both admit.

    Nothing is counted for the messages not admitted: they are deferred, never dropped. The
    platform window is shared by all tenants (`public`), the tenant window is per schema.
    """
    platform = parse(settings.GLOBAL_RATE_LIMIT)
    tenant = _window(desk.tenant_rate_limit, desk.tenant_rate_window_seconds)
    keys = [_window_key(platform, "public", "platform"), _window_key(tenant, connection.schema_name, "tenant")]
    args = [wanted, platform.amount, platform.get_expiry(), tenant.amount, tenant.get_expiry()]
    admitted, holding, retry_after = _admit_shared_tiers_script(redis_client())(keys=keys, args=args)
    if not holding:
        return Admission(count=admitted)
    return Admission(count=admitted, tier=SHARED_TIERS[holding - 1],
                     retry_after=max(float(retry_after), MIN_RETRY_AFTER_SECONDS))


def check_customer(*, contact: Contact, desk: DeskSettings) -> CustomerVerdict:
    """Count this message against the customer; over the limit, say whether this is the window's one notice."""
    item = _window(desk.user_rate_limit, desk.user_rate_window_seconds)
    identifiers = (connection.schema_name, "contact", str(contact.pk))
    if rate_limiter().hit(item, *identifiers):
        return CustomerVerdict(allowed=True)
    notice_key = redis_key("rate-notice", contact.pk)
    first = bool(redis_client().set(notice_key, 1, nx=True, ex=desk.user_rate_window_seconds))
    return CustomerVerdict(allowed=False, send_notice=first)
