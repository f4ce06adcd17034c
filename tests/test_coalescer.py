"""The coalescer of the card gateway's real-time path: batches form under load, never delay a lone
call, and every item gets its own result or its own error, whatever its neighbours got."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_cards.coalescer import Coalescer


class RefusedError(Exception):
    pass


class Operation:
    """A fake batched statement: doubles each item, refuses odd ones, fails whole sends on demand."""

    def __init__(self, fail_sends: frozenset[int] = frozenset(), delay_s: float = 0.001) -> None:
        self.batches: list[list[int]] = []
        self.fail_sends = fail_sends
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, items: list[int]) -> list[int | BaseException]:
        number = len(self.batches)
        self.batches.append(items)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            if number in self.fail_sends:
                raise ConnectionError("the whole send failed")
            return [RefusedError(item) if item % 2 else item * 2 for item in items]
        finally:
            self.in_flight -= 1


async def _outcome(coalescer: Coalescer[int, int], item: int) -> object:
    try:
        return await coalescer.submit(item)
    except (RefusedError, ConnectionError) as error:
        return type(error)


def test_a_lone_call_is_sent_at_once_alone() -> None:
    async def run() -> None:
        operation = Operation()
        coalescer = Coalescer(operation.send, in_flight_max=1)
        assert await coalescer.submit(4) == 8
        with pytest.raises(RefusedError):
            await coalescer.submit(3)
        assert operation.batches == [[4], [3]]

    asyncio.run(run())


def test_concurrent_calls_share_sends_and_each_gets_its_own_result() -> None:
    async def run() -> None:
        operation = Operation()
        coalescer = Coalescer(operation.send, in_flight_max=1, batch_max=16)
        outcomes = await asyncio.gather(*(_outcome(coalescer, item) for item in range(100)))
        assert outcomes == [RefusedError if item % 2 else item * 2 for item in range(100)]
        assert operation.most_in_flight == 1
        assert all(len(batch) <= 16 for batch in operation.batches)
        assert len(operation.batches) <= 8  # 1 alone, then whatever queued: 99 items in <= 7 more
        assert sorted(item for batch in operation.batches for item in batch) == list(range(100))

    asyncio.run(run())


def test_a_failed_send_fails_only_its_own_items_and_the_next_send_goes_on() -> None:
    async def run() -> None:
        operation = Operation(fail_sends=frozenset({1}))
        coalescer = Coalescer(operation.send, in_flight_max=1)
        alone = asyncio.ensure_future(_outcome(coalescer, 2))
        await asyncio.sleep(0)  # send 0 leaves with [2]; send 1 (fails) takes what queued meanwhile
        outcomes = [await alone, *await asyncio.gather(*(_outcome(coalescer, item) for item in (4, 6, 8)))]
        assert operation.batches == [[2], [4, 6, 8]]
        assert outcomes == [4, ConnectionError, ConnectionError, ConnectionError]
        assert await coalescer.submit(10) == 20

    asyncio.run(run())


def test_the_queue_is_bounded() -> None:
    async def run() -> None:
        operation = Operation(delay_s=0.05)
        coalescer = Coalescer(operation.send, in_flight_max=1, batch_max=2, queue_max=4)
        first = [asyncio.ensure_future(coalescer.submit(2))]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # 2 went out
        first += [asyncio.ensure_future(coalescer.submit(item)) for item in (4, 6, 8, 10)]
        await asyncio.sleep(0)  # they fill the queue
        with pytest.raises(OverflowError):
            await coalescer.submit(12)
        assert await asyncio.gather(*first) == [4, 8, 12, 16, 20]

    asyncio.run(run())


def test_a_cancelled_send_leaves_no_caller_waiting() -> None:
    async def run() -> None:
        started = asyncio.Event()

        async def hangs(items: list[int]) -> list[int | BaseException]:
            started.set()
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        coalescer: Coalescer[int, int] = Coalescer(hangs, in_flight_max=1)
        waiting = asyncio.ensure_future(coalescer.submit(1))
        await started.wait()
        for task in list(coalescer._tasks):
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(run())


def test_a_late_item_does_not_hold_up_the_next_batch() -> None:
    async def run() -> None:
        slow: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        batches: list[list[int]] = []

        async def send(items: list[int]) -> list[int | BaseException | asyncio.Future[int]]:
            batches.append(items)
            return [slow if item == 0 else item * 2 for item in items]

        coalescer = Coalescer(send, in_flight_max=1)
        first = asyncio.ensure_future(coalescer.submit(0))
        await asyncio.sleep(0.01)
        assert batches == [[0]] and not first.done()
        assert await asyncio.wait_for(coalescer.submit(5), 5) == 10  # the next batch went meanwhile
        slow.set_result(7)
        assert await first == 7
        failing: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def send_failing(items: list[int]) -> list[int | BaseException | asyncio.Future[int]]:
            return [failing for _ in items]

        late = asyncio.ensure_future(Coalescer(send_failing).submit(1))
        await asyncio.sleep(0.01)
        failing.set_exception(RefusedError(1))
        with pytest.raises(RefusedError):
            await late

    asyncio.run(run())


@settings(max_examples=60, deadline=None)
@given(
    waves=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    in_flight_max=st.integers(1, 4),
    batch_max=st.integers(1, 8),
    fail_sends=st.frozensets(st.integers(0, 40), max_size=5),
)
def test_any_arrival_pattern_gives_each_item_exactly_its_own_outcome(
    waves: list[int], in_flight_max: int, batch_max: int, fail_sends: frozenset[int]
) -> None:
    async def run() -> None:
        operation = Operation(fail_sends, delay_s=0.0005)
        coalescer = Coalescer(operation.send, in_flight_max=in_flight_max, batch_max=batch_max)
        tasks: list[asyncio.Future[object]] = []
        for size in waves:  # items are 0, 1, 2, ... in arrival order, in waves
            tasks += [asyncio.ensure_future(_outcome(coalescer, len(tasks) + i)) for i in range(size)]
            await asyncio.sleep(0.0003)
        outcomes = await asyncio.gather(*tasks)
        sent_in = {item: number for number, batch in enumerate(operation.batches) for item in batch}
        assert sorted(item for batch in operation.batches for item in batch) == list(range(len(tasks)))
        for item, outcome in enumerate(outcomes):
            expected = ConnectionError if sent_in[item] in fail_sends else RefusedError if item % 2 else item * 2
            assert outcome == expected, (item, outcome)
        assert operation.most_in_flight <= in_flight_max
        assert all(1 <= len(batch) <= batch_max for batch in operation.batches)
        assert [item for batch in operation.batches for item in batch] == list(range(len(tasks)))  # in order

    asyncio.run(run())
