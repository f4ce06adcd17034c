"""LISTEN on PostgreSQL channels in a thread and call back on every notification.

NOTIFY is sent at commit by the outbox trigger (migration 0002) and by webhook management RPCs, so
readers wake within a round trip of a commit instead of polling. Notifications can be lost while
the connection is down: the callback also runs after every (re)connection, and readers keep a slow
fallback poll, so a lost wake-up only costs latency, never an event.

A listener with a gate listens only while the gate is set, and holds no connection otherwise: every
commit notifies every listening connection, which costs its backend and its thread a wake-up
(measured ~110 µs of CPU per commit per listening server process, about 5% of a one-transfer call),
so the WatchEvents feed does not listen while nobody watches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "ledger_outbox"
WEBHOOKS_CHANNEL = "ledger_webhooks"
RECONNECT_DELAY_MAX_S = 5.0
WAIT_SLICE_S = 0.5  # how often the thread checks for stop while idle


class NotificationListener:
    def __init__(self, conninfo: str, channels: Sequence[str], on_notify: Callable[[str], None], name: str,
                 gate: threading.Event | None = None) -> None:
        assert channels and all(c.isidentifier() for c in channels)
        self._gate = gate
        self._conninfo = conninfo
        self._channels = tuple(channels)
        self._on_notify = on_notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> NotificationListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            if self._gate is not None and not self._gate.is_set():
                self._gate.wait(WAIT_SLICE_S)  # returns at once when it opens
                continue
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    for channel in self._channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    delay = 0.05
                    for channel in self._channels:  # anything committed while we were away
                        self._on_notify(channel)
                    self._listen(conn)
            except psycopg.Error as error:
                if self._stop.is_set():
                    break
                log.warning("notification listener lost its connection: %s", error)
                self._stop.wait(delay)
                delay = min(RECONNECT_DELAY_MAX_S, delay * 2)

    def _open(self) -> bool:
        return self._gate is None or self._gate.is_set()

    def _listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Until stopped, or until the gate closes (then the connection, and its LISTEN, is dropped)."""
        while not self._stop.is_set() and self._open():
            for notify in conn.notifies(timeout=WAIT_SLICE_S):
                self._on_notify(notify.channel)
                if self._stop.is_set() or not self._open():
                    return
