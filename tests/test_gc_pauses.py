"""Every long-running process freezes its startup heap (ledger_server/gc_pauses.py): what was built
before it serves is out of the collector's way, and cycles made later are still collected."""

from __future__ import annotations

import gc
import weakref

from ledger_server.gc_pauses import YOUNG_COLLECTION_THRESHOLD, freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_the_startup_heap_is_frozen_and_later_cycles_are_still_collected() -> None:
    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > before + 1000  # the interpreter, pytest, grpc, psycopg... all of it
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle made after the freeze
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
        assert gc.get_freeze_count() == frozen  # nothing new was frozen behind the collector's back
        # a batch's live objects no longer set off collections that only promote them
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
