"""A card processor simulator, for tests and benchmarks.

It issues cards to funded cardholders, generates realistic lifecycles (authorizations, advices,
incremental authorizations, partial and multiple clearings, over-captures, reversals, expiries,
force posts, stand-in approvals, returns and return reversals, holds left open), asks the gateway
for every real-time authorization, then delivers the lifecycle events the way processors do:
batched (up to 10 per delivery), concurrently, with duplicates, reordering, delays and retries
(a delivery whose answer was "lost" is sent again with the same webhook-id and a new timestamp).
It also computes what every ledger account must hold in the end, and compares.

    python -m ledger_cards.simulator --gateway http://127.0.0.1:8080 --secret whsec_... \\
        --admin-key ... --ledger-target 127.0.0.1:50051 --lifecycles 10000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ledger_cards.http_wire import ConnectionPool
from ledger_cards.model import CardEvent, EventType, ProgramRole
from ledger_cards.schema import event_to_json
from ledger_cards.signatures import signed_headers
from ledger_client import AsyncLedgerClient, NewTransfer

EVENTS_PER_DELIVERY = 10
WAVE = 1_000  # lifecycles per wave of traffic
FUNDS = 10_000_000  # every cardholder starts with this: amply funded, so every decision is known ahead

Counters = tuple[int, int, int, int]  # debits_pending, debits_posted, credits_pending, credits_posted


@dataclass(frozen=True)
class SimCard:
    token: str
    account_id: str


@dataclass
class Lifecycle:
    scenario: str
    token: str
    card: SimCard
    authorize: int | None  # the real-time request's amount (None: the processor never asks us)
    created: dt.datetime
    events: list[CardEvent] = field(default_factory=list)


@dataclass
class Expected:
    """What every account must end with: counter deltas per account id."""

    accounts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))

    def post(self, debit: str, credit: str, amount: int) -> None:
        if amount:
            self.accounts[debit][1] += amount
            self.accounts[credit][3] += amount

    def pending(self, debit: str, credit: str, amount: int) -> None:
        if amount:
            self.accounts[debit][0] += amount
            self.accounts[credit][2] += amount


@dataclass
class Scenario:
    lifecycles: list[Lifecycle]
    expected: Expected
    mix: Counter[str]


class LifecycleFactory:
    """Builds lifecycles and books their expected effects (funds are ample: nothing is declined)."""

    MIX = (("purchase", 33), ("split", 10), ("incremental", 8), ("advice", 5), ("tip", 7), ("reversal", 7),
           ("partial_reversal", 5), ("expiry", 5), ("force_post", 4), ("stand_in", 3), ("open", 4),
           ("open_partial", 2), ("return", 7))

    def __init__(self, rng: random.Random, asset: str, program: dict[str, str], expected: Expected) -> None:
        self.rng = rng
        self.asset = asset
        self.program = program
        self.expected = expected
        self.names = [name for name, _ in self.MIX]
        self.weights = [weight for _, weight in self.MIX]
        self.clock = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    def build(self, card: SimCard) -> Lifecycle:
        scenario = self.rng.choices(self.names, self.weights)[0]
        self.clock += dt.timedelta(milliseconds=7)
        token = "auth_" + uuid.uuid4().hex
        amount = self.rng.randint(100, 20_000)
        asks = scenario not in ("force_post", "stand_in")
        life = Lifecycle(scenario, token, card, amount if asks else None, self.clock)
        getattr(self, "_" + scenario)(life, amount)
        return life

    # -- event helpers ----------------------------------------------------------------------------

    def _event(self, life: Lifecycle, kind: EventType, amount: int = 0, token: str | None = None,
               **fields: Any) -> CardEvent:
        created = life.created + dt.timedelta(seconds=len(life.events) + 1)
        item = CardEvent(token="evt_" + uuid.uuid4().hex, type=kind, transaction_token=token or life.token,
                         card_token=life.card.token, created=created, currency=self.asset, amount=amount, **fields)
        life.events.append(item)
        return item

    def _authorization(self, life: Lifecycle, amount: int) -> None:
        self._event(life, EventType.AUTHORIZATION, amount, status="APPROVED")

    def _clear(self, life: Lifecycle, amount: int, final: bool = True) -> None:
        interchange = amount * 15 // 1000
        fee = 2 + amount // 2000
        self._event(life, EventType.CLEARING, amount, final=final, interchange=interchange, network_fee=fee)
        p = self.program
        self.expected.post(life.card.account_id, p[ProgramRole.MERCHANT_SETTLEMENT], amount)
        self.expected.post(p[ProgramRole.PROCESSOR_RECEIVABLE], p[ProgramRole.FEE_REVENUE], interchange)
        self.expected.post(p[ProgramRole.NETWORK_FEES], p[ProgramRole.PROCESSOR_RECEIVABLE], fee)

    def _hold_left(self, life: Lifecycle, amount: int) -> None:
        self.expected.pending(life.card.account_id, self.program[ProgramRole.MERCHANT_SETTLEMENT], amount)

    # -- scenarios --------------------------------------------------------------------------------

    def _purchase(self, life: Lifecycle, amount: int) -> None:
        self._authorization(life, amount)
        self._clear(life, amount)

    def _split(self, life: Lifecycle, amount: int) -> None:
        first = amount * self.rng.randint(30, 60) // 100
        second = max(1, (amount - first) * self.rng.randint(30, 100) // 100)
        self._authorization(life, amount)
        self._clear(life, first, final=False)
        self._clear(life, second, final=True)

    def _incremental(self, life: Lifecycle, amount: int) -> None:
        extra = self.rng.randint(100, 5_000)
        self._authorization(life, amount)
        self._event(life, EventType.AUTHORIZATION_INCREMENTAL, extra, authorized_amount=amount + extra)
        self._clear(life, amount + extra)

    def _advice(self, life: Lifecycle, amount: int) -> None:
        lower = max(1, amount * self.rng.randint(50, 95) // 100)
        self._authorization(life, amount)
        self._event(life, EventType.AUTHORIZATION_ADVICE, 0, authorized_amount=lower)
        self._clear(life, lower)

    def _tip(self, life: Lifecycle, amount: int) -> None:
        self._authorization(life, amount)
        self._clear(life, amount + amount * self.rng.randint(5, 20) // 100)

    def _reversal(self, life: Lifecycle, amount: int) -> None:
        self._authorization(life, amount)
        self._event(life, EventType.AUTHORIZATION_REVERSAL, amount, authorized_amount=0)

    def _partial_reversal(self, life: Lifecycle, amount: int) -> None:
        reversed_amount = max(1, amount // 4)
        self._authorization(life, amount)
        self._event(life, EventType.AUTHORIZATION_REVERSAL, reversed_amount,
                    authorized_amount=amount - reversed_amount)
        self._clear(life, amount - reversed_amount)

    def _expiry(self, life: Lifecycle, amount: int) -> None:
        self._authorization(life, amount)
        self._event(life, EventType.AUTHORIZATION_EXPIRY)
        if self.rng.random() < 0.5:
            self._clear(life, amount)  # clearing after the expiry: must still post

    def _force_post(self, life: Lifecycle, amount: int) -> None:
        self._clear(life, amount)

    def _stand_in(self, life: Lifecycle, amount: int) -> None:
        self._authorization(life, amount)
        self._clear(life, amount)

    def _open(self, life: Lifecycle, amount: int) -> None:
        self._authorization(life, amount)
        self._hold_left(life, amount)

    def _open_partial(self, life: Lifecycle, amount: int) -> None:
        first = amount // 3
        self._authorization(life, amount)
        self._clear(life, first, final=False)
        self._hold_left(life, amount - first)

    def _return(self, life: Lifecycle, amount: int) -> None:
        self._purchase(life, amount)
        returned = max(1, amount * self.rng.randint(20, 100) // 100)
        return_token = "ret_" + uuid.uuid4().hex
        interchange = returned * 15 // 1000
        self._event(life, EventType.RETURN, returned, token=return_token, interchange=interchange,
                    original_transaction_token=life.token)
        p = self.program
        self.expected.post(p[ProgramRole.MERCHANT_SETTLEMENT], life.card.account_id, returned)
        self.expected.post(p[ProgramRole.FEE_REVENUE], p[ProgramRole.PROCESSOR_RECEIVABLE], interchange)
        if self.rng.random() < 0.4:
            taken_back = max(1, returned // 2)
            self._event(life, EventType.RETURN_REVERSAL, taken_back, token=return_token)
            self.expected.post(life.card.account_id, p[ProgramRole.MERCHANT_SETTLEMENT], taken_back)


def build_scenario(seed: int, lifecycles: int, cards: Sequence[SimCard], asset: str,
                   program: dict[str, str]) -> Scenario:
    rng = random.Random(seed)
    expected = Expected()
    factory = LifecycleFactory(rng, asset, program, expected)
    built = [factory.build(rng.choice(cards)) for _ in range(lifecycles)]
    return Scenario(built, expected, Counter(life.scenario for life in built))


def delivery_order(
    scenario: Scenario, rng: random.Random, duplicate_rate: float, reorder_rate: float
) -> list[CardEvent]:
    """Events in processor time, then disturbed: a `reorder_rate` share of all events is delayed past
    the next event of its own transaction (and a little more), a `duplicate_rate` share is sent twice."""
    stream = sorted((e for life in scenario.lifecycles for e in life.events), key=lambda e: (e.created, e.token))
    next_sibling: dict[int, int] = {}
    last_seen: dict[str, int] = {}
    for position in range(len(stream) - 1, -1, -1):
        token = stream[position].transaction_token
        if token in last_seen:
            next_sibling[position] = last_seen[token]
        last_seen[token] = position
    # Displacing an event behind its successor reorders it; a little extra makes up for the events
    # whose successor was displaced too.
    chance = min(1.0, 1.2 * reorder_rate * len(stream) / max(1, len(next_sibling)))
    disturbed: list[tuple[float, int, CardEvent]] = []
    for position, item in enumerate(stream):
        slot = float(position)
        if position in next_sibling and rng.random() < chance:
            slot = next_sibling[position] + rng.uniform(0.5, 50)  # delivered after its successor
        elif rng.random() < 0.05:
            slot += rng.uniform(1, 400)  # merely late
        disturbed.append((slot, position, item))
        if rng.random() < duplicate_rate:
            disturbed.append((slot + rng.uniform(1, 2_000), position, item))
    disturbed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in disturbed]


def reordered_share(events: list[CardEvent]) -> float:
    """The share of distinct events delivered (first) after an event of their own transaction that the
    processor produced later: how disordered the delivery really was."""
    latest: dict[str, dt.datetime] = {}
    seen: set[str] = set()
    late = 0
    for item in events:
        if item.token in seen:
            continue
        seen.add(item.token)
        if item.transaction_token in latest and latest[item.transaction_token] > item.created:
            late += 1
        latest[item.transaction_token] = max(latest.get(item.transaction_token, item.created), item.created)
    return late / max(1, len(seen))


@dataclass
class RunReport:
    lifecycles: int
    authorizations: int
    events: int
    deliveries: int
    duplicates_sent: int
    retried_deliveries: int
    reordered: float
    authorization_seconds: float
    delivery_seconds: float
    apply_seconds: float
    mix: dict[str, int]
    mismatches: list[str]

    def summary(self) -> str:
        return (f"lifecycles={self.lifecycles} authorizations={self.authorizations} events={self.events} "
                f"deliveries={self.deliveries} duplicates={self.duplicates_sent} retries={self.retried_deliveries} "
                f"reordered={self.reordered:.1%} auth_s={self.authorization_seconds:.1f} "
                f"traffic_s={self.delivery_seconds:.1f} apply_tail_s={self.apply_seconds:.1f} "
                f"mismatches={len(self.mismatches)}")


class Simulator:
    def __init__(self, gateway_url: str, secret: str, admin_key: str, ledger: AsyncLedgerClient,
                 asset: str = "USD", concurrency: int = 24, replica_urls: Sequence[str] = ()) -> None:
        """`replica_urls`: more gateway replicas; each request of the processor's traffic goes to one
        of all of them at random (a duplicate or a retry usually lands on another replica)."""
        assert 1 <= concurrency <= 256 and len(replica_urls) <= 8
        self.secret = secret
        self.admin_key = admin_key
        self.ledger = ledger
        self.asset = asset
        self.concurrency = concurrency
        self.http = httpx.AsyncClient(base_url=gateway_url, timeout=30)  # setup and admin calls
        self.wires = [ConnectionPool(httpx.URL(url).host, httpx.URL(url).port or 80, concurrency)
                      for url in (gateway_url, *replica_urls)]  # the processor's traffic

    async def close(self) -> None:
        for wire in self.wires:
            wire.close()
        await self.http.aclose()

    async def _bounded(self, jobs: Sequence[Any]) -> list[Any]:
        gate = asyncio.Semaphore(self.concurrency)

        async def run(job: Any) -> Any:
            async with gate:
                return await job

        return list(await asyncio.gather(*(run(job) for job in jobs)))

    # -- setup ------------------------------------------------------------------------------------

    async def issue_cards(self, count: int) -> list[SimCard]:
        """`count` funded cardholders with one card each (the funding account pays their balances)."""
        funding = await self.ledger.create_account(asset=self.asset, metadata={"role": "simulator_funding"})
        wallets = await self._bounded([
            self.ledger.create_account(asset=self.asset, debits_must_not_exceed_credits=True,
                                       metadata={"tenant": "simulator"})
            for _ in range(count)
        ])
        for start in range(0, count, 1000):
            batch = [NewTransfer(debit_account_id=funding.id, credit_account_id=w.id, amount=FUNDS, asset=self.asset)
                     for w in wallets[start:start + 1000]]
            result = await self.ledger.create_transfers(transfers=batch, atomic=True)
            assert result.ok, result.errors[:3]

        async def issue(account_id: str) -> SimCard:
            token = "card_" + uuid.uuid4().hex
            response = await self.http.post("/v1/cards", json={"card_token": token, "account_id": account_id},
                                             headers={"authorization": f"Bearer {self.admin_key}"})
            assert response.status_code == 201, response.text
            return SimCard(token, account_id)

        return await self._bounded([issue(w.id) for w in wallets])

    async def program(self) -> dict[str, str]:
        found: dict[str, str] = {}
        async for account in self.ledger.iter_accounts(asset=self.asset, page_size=1000):
            role = account.metadata.get("card_program")
            if role:
                found[role] = account.id
        assert len(found) == len(ProgramRole), found
        return found

    # -- traffic ----------------------------------------------------------------------------------

    async def _signed(
        self, path: str, payload: dict[str, Any], message_id: str, attempt: int = 0
    ) -> tuple[int, bytes]:
        """A signed request; a retry (attempt > 0) keeps the message id and signs its own, later timestamp."""
        body = json.dumps(payload).encode()
        headers = signed_headers(self.secret, message_id, body, int(time.time()) + attempt)
        return await random.choice(self.wires).post(path, body, headers)

    async def authorize(self, life: Lifecycle) -> dict[str, Any]:
        assert life.authorize is not None
        payload = {"token": life.token, "card_token": life.card.token, "amount": life.authorize,
                   "currency": self.asset, "created": life.created.isoformat().replace("+00:00", "Z"),
                   "merchant": {"mcc": "5411", "name": "Simulated", "country": "US"}}
        status, body = await self._signed("/v1/authorizations", payload, "authreq_" + life.token)
        assert status == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer

    async def deliver(self, events: list[CardEvent], rng: random.Random, retry_rate: float) -> tuple[int, int]:
        """Deliveries of up to 10 events, concurrently; a `retry_rate` share is sent a second time."""
        deliveries = [events[i:i + EVENTS_PER_DELIVERY] for i in range(0, len(events), EVENTS_PER_DELIVERY)]
        retried = 0

        async def send(batch: list[CardEvent], retry: bool) -> None:
            message_id = "msg_" + uuid.uuid4().hex
            payload = {"events": [event_to_json(e) for e in batch]}
            for attempt in range(2 if retry else 1):
                status, answer = await self._signed("/v1/events", payload, message_id, attempt)
                assert status == 200, answer

        jobs = []
        for batch in deliveries:
            retry = rng.random() < retry_rate
            retried += retry
            jobs.append(send(batch, retry))
        await self._bounded(jobs)
        return len(deliveries), retried

    async def wait_applied(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            status = (await self.http.get("/healthz")).json()
            if status["unapplied_events"] == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"events still unapplied after {timeout_s}s: {status}")
            await asyncio.sleep(0.1)

    async def compare(self, expected: Expected, cards: Sequence[SimCard], program: dict[str, str]) -> list[str]:
        """Every cardholder and program account against the expectation: a list of differences."""
        accounts = [card.account_id for card in cards] + list(program.values())
        actual = await self._bounded([self.ledger.get_account(account_id=a) for a in accounts])
        mismatches = []
        for account in actual:
            want = list(expected.accounts.get(account.id, [0, 0, 0, 0]))
            if account.id in {c.account_id for c in cards}:
                want[3] += FUNDS
            got = [account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted]
            if got != want:
                mismatches.append(f"{account.id} {account.metadata}: expected {want}, got {got}")
        return mismatches

    async def run(self, lifecycles: int, cards: int, seed: int = 7, duplicate_rate: float = 0.10,
                  reorder_rate: float = 0.20, retry_rate: float = 0.02, apply_timeout_s: float = 600) -> RunReport:
        rng = random.Random(seed)
        issued = await self.issue_cards(cards)
        program = await self.program()
        scenario = build_scenario(seed, lifecycles, issued, self.asset, program)
        # Waves: while the processor asks about the authorizations of one wave, the events of the
        # previous wave are being delivered (disturbed within their wave), as in real traffic.
        waves = [Scenario(scenario.lifecycles[i:i + WAVE], scenario.expected, scenario.mix)
                 for i in range(0, len(scenario.lifecycles), WAVE)]
        started = time.monotonic()
        timings = {"authorize": 0.0, "deliver": 0.0}
        order: list[CardEvent] = []
        deliveries = retried = 0

        async def authorize_wave(wave: Scenario) -> None:
            began = time.monotonic()
            asks = [life for life in wave.lifecycles if life.authorize is not None]
            answers = await self._bounded([self.authorize(life) for life in asks])
            declined = [a for a in answers if a["result"] != "APPROVED"]
            assert not declined, declined[:3]
            timings["authorize"] += time.monotonic() - began

        async def deliver_wave(wave: Scenario) -> None:
            nonlocal deliveries, retried
            began = time.monotonic()
            disturbed = delivery_order(wave, rng, duplicate_rate, reorder_rate)
            order.extend(disturbed)
            sent, again = await self.deliver(disturbed, rng, retry_rate)
            deliveries, retried = deliveries + sent, retried + again
            timings["deliver"] += time.monotonic() - began

        await authorize_wave(waves[0])
        for index, wave in enumerate(waves):
            following = [authorize_wave(waves[index + 1])] if index + 1 < len(waves) else []
            await asyncio.gather(deliver_wave(wave), *following)
        delivered = time.monotonic()
        await self.wait_applied(apply_timeout_s)
        applied = time.monotonic()
        distinct = len({e.token for e in order})
        return RunReport(
            lifecycles=lifecycles, authorizations=sum(life.authorize is not None for life in scenario.lifecycles),
            events=distinct, deliveries=deliveries, duplicates_sent=len(order) - distinct,
            retried_deliveries=retried, reordered=reordered_share(order),
            authorization_seconds=timings["authorize"], delivery_seconds=delivered - started,
            apply_seconds=applied - delivered, mix=dict(scenario.mix),
            mismatches=await self.compare(scenario.expected, issued, program),
        )


async def _main(args: argparse.Namespace) -> int:
    async with AsyncLedgerClient(args.ledger_target, token=args.ledger_api_key, timeout=30) as ledger:
        simulator = Simulator(args.gateway, args.secret, args.admin_key, ledger, args.asset, args.concurrency)
        try:
            report = await simulator.run(args.lifecycles, args.cards, args.seed)
        finally:
            await simulator.close()
    print(report.summary())
    for line in report.mismatches[:20]:
        print("MISMATCH", line)
    return 1 if report.mismatches else 0


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m ledger_cards.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=env("CARD_GATEWAY_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--secret", default=env("CARD_WEBHOOK_SECRET"))
    parser.add_argument("--admin-key", default=env("CARD_GATEWAY_ADMIN_KEY"))
    parser.add_argument("--ledger-target", default=env("LEDGER_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--ledger-api-key", default=env("LEDGER_API_KEY"))
    parser.add_argument("--asset", default="USD")
    parser.add_argument("--lifecycles", type=int, default=10_000)
    parser.add_argument("--cards", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
