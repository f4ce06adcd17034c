"""Per-card spend limits per UTC day and month: Redis counters, the authorization records as truth.

One Lua call checks both windows and reserves the amount atomically (concurrent authorizations of
one card cannot both squeeze under the limit). A missing counter (Redis restarted, key evicted) is
rebuilt from the truth: approved authorizations in the window (`card_authorizations`, which mirror
the ledger holds one to one) plus reservations still in flight. With Redis down the gateway decides
from the database under a per-card lock and reserves there too (`card_spend_reservations`), so
concurrent authorizations of one card still cannot both pass (slower: two round trips more). A card
decided that way has its Redis counters dropped when Redis answers again, so they are rebuilt with
what was approved meanwhile instead of undercounting it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ledger_cards.model import Card
from ledger_cards.store import CardStore

log = logging.getLogger(__name__)

LUA_MAX = 2**53  # Lua numbers are doubles: amounts past this use the database path
REDIS_TIMEOUT_S = 0.05
STALE_CARDS_MAX = 100_000  # past it, counters of cards decided during an outage rebuild at expiry only

TOKEN_TTL_S = 300  # a decision's reservation is remembered until its answer is long recorded
# KEYS: day counter, month counter, the authorization token's reservation. ARGV: amount, day limit,
# month limit (0: none), partial (0/1), token ttl. Returns the reserved amount (0: over a limit), or
# -1 when a counter is missing. A token decided before gets what it got then, and nothing is
# reserved twice: copies of one authorization decided at once (the processor sending it twice, a
# retry before the first answer is recorded) hold once in the ledger, so they may count only once.
RESERVE = """
local earlier = redis.call('GET', KEYS[3])
if earlier then return tonumber(earlier) end
local amount = tonumber(ARGV[1])
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local allowed = amount
for i = 1, 2 do
  if limits[i] > 0 then
    local used = redis.call('GET', KEYS[i])
    if not used then return -1 end
    local room = limits[i] - tonumber(used)
    if room < allowed then allowed = room end
  end
end
if allowed < 0 or (allowed < amount and ARGV[4] ~= '1') then allowed = 0 end
if allowed > 0 then
  for i = 1, 2 do
    if limits[i] > 0 then redis.call('INCRBY', KEYS[i], allowed) end
  end
end
redis.call('SET', KEYS[3], allowed, 'EX', ARGV[5])
return allowed
"""
# KEYS: day counter, month counter, the release's once-marker (token and reason). ARGV: amount,
# day limit set (0/1), month limit set (0/1), marker ttl. Gives the amount back once per token and
# reason: copies of one decision compute the same release, and only the first may apply.
RELEASE = """
if not redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[4]) then return 0 end
if ARGV[2] == '1' then redis.call('DECRBY', KEYS[1], ARGV[1]) end
if ARGV[3] == '1' then redis.call('DECRBY', KEYS[2], ARGV[1]) end
return 1
"""


@dataclass(frozen=True)
class Windows:
    day_start: dt.datetime
    month_start: dt.datetime
    day_key: str
    month_key: str


def windows(card_id: str, now: dt.datetime) -> Windows:
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return Windows(day, month, f"card:spend:{card_id}:d:{day:%Y%m%d}", f"card:spend:{card_id}:m:{month:%Y%m}")


def token_key(card_id: str, token: str) -> str:
    """What one authorization reserved (RESERVE) and the markers of what it gave back (RELEASE)."""
    return f"card:spend:{card_id}:t:{token}"


class SpendLimits:
    def __init__(self, redis_url: str | None, store: CardStore) -> None:
        self._redis = aioredis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                        socket_connect_timeout=REDIS_TIMEOUT_S) if redis_url else None
        self._store = store
        self._script = self._redis.register_script(RESERVE) if self._redis is not None else None
        self._release = self._redis.register_script(RELEASE) if self._redis is not None else None
        self._stale: set[str] = set()  # cards decided without Redis: their counters are behind

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def reserve(self, card: Card, amount: int, partial: bool, now: dt.datetime, token: str) -> int:
        """The amount the limits allow (all, part when `partial`, or 0), reserved against them for the
        authorization `token`."""
        if card.daily_limit is None and card.monthly_limit is None:
            return amount
        win = windows(card.id, now)
        small = amount < LUA_MAX and max(card.daily_limit or 0, card.monthly_limit or 0) < LUA_MAX
        if self._script is not None and small:
            try:
                return await self._reserve_in_redis(card, amount, partial, win, token)
            except RedisError as error:
                log.warning("spend limits: Redis unavailable (%s); deciding from the authorization records", error)
        if self._redis is not None and len(self._stale) < STALE_CARDS_MAX:
            self._stale.add(card.id)
        return await self._reserve_in_database(card, amount, partial, win, token)

    async def release(self, card: Card, amount: int, now: dt.datetime, token: str, reason: str) -> None:
        """Give back a reservation the ledger did not use (declined, approved for less: reason
        "unused"; a late hold voided: "voided"), once per token and reason."""
        if amount <= 0 or self._release is None or (card.daily_limit is None and card.monthly_limit is None):
            return
        win = windows(card.id, now)
        marker = f"{token_key(card.id, token)}:released:{reason}"
        args = [amount, int(card.daily_limit is not None), int(card.monthly_limit is not None), TOKEN_TTL_S]
        try:
            await self._release(keys=[win.day_key, win.month_key, marker], args=args)
        except RedisError as error:
            log.warning("spend limits: could not release %d on card %s: %s", amount, card.id, error)

    async def _reserve_in_redis(self, card: Card, amount: int, partial: bool, win: Windows, token: str) -> int:
        assert self._script is not None and self._redis is not None
        if card.id in self._stale:  # decided from the database meanwhile: rebuild from the truth
            await self._redis.delete(win.day_key, win.month_key)
            self._stale.discard(card.id)
        args = [amount, card.daily_limit or 0, card.monthly_limit or 0, 1 if partial else 0, TOKEN_TTL_S]
        keys = [win.day_key, win.month_key, token_key(card.id, token)]
        for _ in range(2):
            result = int(await self._script(keys=keys, args=args))
            if result >= 0:
                return result
            await self._seed(card, win)
        raise RedisError("spend counters vanished twice in a row")

    async def _seed(self, card: Card, win: Windows) -> None:
        """Rebuild missing counters from the truth; NX keeps a concurrent seeder's value."""
        assert self._redis is not None
        day, month = await self._store.spent_since(card.id, win.day_start, win.month_start)
        if card.daily_limit is not None:
            await self._redis.set(win.day_key, day, nx=True, ex=2 * 86_400)
        if card.monthly_limit is not None:
            await self._redis.set(win.month_key, month, nx=True, ex=32 * 86_400)

    async def _reserve_in_database(self, card: Card, amount: int, partial: bool, win: Windows, token: str) -> int:
        def allowed(day_spent: int, month_spent: int) -> int:
            room = amount
            if card.daily_limit is not None:
                room = min(room, card.daily_limit - day_spent)
            if card.monthly_limit is not None:
                room = min(room, card.monthly_limit - month_spent)
            if room <= 0 or (room < amount and not partial):
                return 0
            return room

        return await self._store.reserve_spend(card.id, token, win.day_start, win.month_start, allowed)
