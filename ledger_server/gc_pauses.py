"""Keep the garbage collector's full collections short in long-running, latency-bound processes.

CPython's full (generation 2) collection walks every tracked object, and a server's heap is mostly
what it imported and built at startup: protobuf descriptors, gRPC, psycopg, the ASGI stack. Measured
under the card benchmark at 500 authorizations/s (2026-11-25, gc callbacks): full collections of
17-60 ms in the gateway, the ledger and the load generator, each one a pause of every request in
flight, i.e. the p99. Moving the startup heap to the permanent generation (`gc.freeze`) leaves the
collector only what was allocated since; cycles created later are still collected.

The young generation's threshold is raised too. CPython counts live container objects allocated
since the last young collection and collects at 700: a batch of 1,000 transfers keeps ~50,000 alive
while it is applied, so it set off ~70 young collections, each promoting live objects that older
collections then scanned again, for nothing (no cycles among them). perf on `benchmarks.engine`:
the collector was a quarter of the Python CPU of 1,000-transfer batches; at 50,000 the Python per
such batch fell 48-52 -> 45-46 ms with the startup heap frozen (55-58 -> 46-49 ms without),
1- and 25-transfer batches within the noise.
A young collection then scans at most ~50,000 objects (a few ms, rare); memory is still freed by
reference counting the moment it is unused.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

YOUNG_COLLECTION_THRESHOLD = 50_000  # CPython's default is 700; the older generations keep theirs


def freeze_startup_heap() -> None:
    """Call when the process has built what it keeps (before it serves; a load generator again once
    a run's requests are built). Collects first, so no garbage is frozen with it. Frozen objects are
    still freed when their last reference goes; only the cyclic collector stops scanning them."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
    log.debug("startup heap frozen: %d objects, %.1f ms", gc.get_freeze_count(),
              (time.perf_counter() - started) * 1000)
