"""Cards in memory for the real-time path: a cache hit saves the authorization its database lookup.

Correctness never rests on the cache: an answer decided with a cached card is recorded only if the
card's version is still the one it was decided with (store.record_authorizations), otherwise it is
decided again with the card as it is now. The cache only keeps such second decisions rare: every
change of a card is announced at its commit (`card_changed`, migration 0010) and evicts the card
here. While the listening connection is down the cache is empty and unused (every authorization
looks its card up, as without a cache); when it is back the cache starts empty again, since
changes made meanwhile were not heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from ledger_cards.model import Card

log = logging.getLogger(__name__)

CAPACITY = 100_000  # cards kept; past it the oldest entries go (a miss costs one lookup, nothing else)
RECONNECT_DELAY_S = (0.05, 0.2, 1.0, 2.0)  # between attempts to listen again, then every 2 s
# The listening connection must notice a silently dead peer: keepalives every few seconds.
KEEPALIVES = "keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3"


class CardCache:
    def __init__(self, database_url: str, capacity: int = CAPACITY) -> None:
        assert capacity > 0, capacity
        self._url = database_url
        self._capacity = capacity
        self._cards: dict[str, Card] = {}  # by card token, oldest first
        # Bumped by every eviction: a card read before a change it may not reflect is not stored.
        self._generation = 0
        self._listening = False
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.hits = self.misses = self.evictions = self.reconnects = 0

    async def start(self, wait_s: float = 10.0) -> None:
        """Start listening; returns once the cache is in use (or after `wait_s`: it stays unused
        until the listener gets through)."""
        self._listener = asyncio.ensure_future(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait_s)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self._off()

    def get(self, token: str) -> Card | None:
        card = self._cards.get(token) if self._listening else None
        if card is None:
            self.misses += 1
        else:
            self.hits += 1
        return card

    def generation(self) -> int:
        """Take before reading a card from the database; pass to `put` with what was read."""
        return self._generation

    def put(self, card: Card, generation: int) -> None:
        """Keep `card`, read after `generation()` returned `generation`, unless a change was heard
        since (the read may predate it)."""
        if not self._listening or generation != self._generation:
            return
        if card.token not in self._cards and len(self._cards) >= self._capacity:
            del self._cards[next(iter(self._cards))]
        self._cards[card.token] = card

    def evict(self, token: str) -> None:
        self._generation += 1
        self.evictions += 1
        self._cards.pop(token, None)

    def stats(self) -> dict[str, int]:
        return {"listening": int(self._listening), "cards": len(self._cards), "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions, "reconnects": self.reconnects}

    def _off(self) -> None:
        self._listening = False
        self._generation += 1
        self._cards.clear()

    async def _listen(self) -> None:
        attempt = 0
        while True:
            try:
                url = psycopg.conninfo.make_conninfo(self._url, **psycopg.conninfo.conninfo_to_dict(KEEPALIVES))
                conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN card_changed")
                    self._off()  # changes made while nobody listened were not heard
                    self._listening = True
                    self._ready.set()
                    attempt = 0
                    async for notice in conn.notifies():
                        self.evict(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("card cache: not listening for card changes (%s); cards are looked up meanwhile", error)
            finally:
                self._off()
            self.reconnects += 1
            await asyncio.sleep(RECONNECT_DELAY_S[min(attempt, len(RECONNECT_DELAY_S) - 1)])
            attempt += 1
