"""The real-time authorization decision: card controls, spend limits, then a ledger hold.

The ledger decides availability: the hold (request id `card:auth:{token}`) is refused with
INSUFFICIENT_FUNDS when the cardholder's available balance is short, atomically with every other
hold on the account. A partial approval holds what is available under `card:auth:{token}:partial`.
The answer races a budget far below the processor's timeout: past it the configured default is
answered and the late outcome is made consistent with that answer in the background (a hold
placed after a timed-out decline is voided: no money stuck).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ledger_cards.card_cache import CardCache
from ledger_cards.coalescer import Coalescer
from ledger_cards.hold_batcher import HoldBatcher
from ledger_cards.lifecycle import LifecycleConfig, authorization_hold, hold_request_id
from ledger_cards.model import AuthorizationRequest, Card, CardState, TransactionState
from ledger_cards.program import Programs
from ledger_cards.spend_limits import SpendLimits
from ledger_cards.store import (
    BATCH_ROWS_MAX,
    AuthorizationContext,
    AuthorizationLookup,
    AuthorizationRecord,
    CardStore,
    RecordResult,
)
from ledger_client import (
    AsyncLedgerClient,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerError,
    NewTransfer,
    Rejected,
)
from ledger_client.errors import NotFound, PendingAlreadyVoided, PendingExpired

log = logging.getLogger(__name__)

APPROVED, PARTIAL, DECLINED = "APPROVED", "PARTIALLY_APPROVED", "DECLINED"
LATE_OUTCOME_WAIT_S = 30.0
BACKGROUND_MAX = 10_000
SLOW_ANSWER_S = 0.1  # an answer slower than this is logged with where its time went (at most once a second)


@dataclass(frozen=True)
class AuthorizerConfig:
    budget_ms: int = 250  # answer within this, whatever happens (Stripe waits 2 s, Marqeta 3 s)
    timeout_decision: str = DECLINED  # what a timeout answers: DECLINED or APPROVED
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)

    def __post_init__(self) -> None:
        assert 10 <= self.budget_ms <= 5_000, self.budget_ms
        assert self.timeout_decision in (APPROVED, DECLINED), self.timeout_decision


class ReplayedRequestError(Exception):
    """This signed request was received before (same message id and timestamp): refused, 409."""


@dataclass(frozen=True)
class Decision:
    token: str
    result: str
    approved_amount: int
    decline_reason: str | None = None
    hold_id: str | None = None
    timed_out: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token, "result": self.result, "approved_amount": self.approved_amount,
            "decline_reason": self.decline_reason, "hold_id": self.hold_id,
        }


@dataclass(frozen=True)
class _Outcome:
    """What the decision path did: the decision, and the card it concerns (None: unknown card).
    `replayed`: the decision is the earlier answer to the token, found by the card lookup.
    `looked_up`: the card came from the database (whose lookup marked the signed message), not
    from the card cache."""

    decision: Decision
    card: Card | None
    replayed: bool = False
    looked_up: bool = False


class Authorizer:
    def __init__(
        self, store: CardStore, ledger: AsyncLedgerClient, programs: Programs, limits: SpendLimits,
        config: AuthorizerConfig, cards: CardCache | None = None,
    ) -> None:
        self._store = store
        self._cards = cards
        self._ledger = ledger
        self._programs = programs
        self._limits = limits
        self.config = config
        self._background: set[asyncio.Task[None]] = set()
        self._slow_logged_at = 0.0
        self._holds = HoldBatcher(ledger)
        self._contexts: Coalescer[AuthorizationLookup, AuthorizationContext] = Coalescer(
            store.authorization_contexts, batch_max=BATCH_ROWS_MAX)
        self._records: Coalescer[AuthorizationRecord, RecordResult] = Coalescer(
            store.record_authorizations, batch_max=BATCH_ROWS_MAX)

    def round_trips(self) -> dict[str, dict[str, int]]:
        """How the real-time path's round trips were shared: per kind, sends and items (/healthz)."""
        return {"lookups": self._contexts.stats(), "holds": self._holds.stats(), "records": self._records.stats(),
                "card_cache": self._cards.stats() if self._cards is not None else {}}

    async def authorize(self, request: AuthorizationRequest, message_key: str) -> Decision:
        """The answer to the processor, within the budget. `message_key` names the signed request
        (message id and timestamp): received before, it raises ReplayedRequestError and decides nothing."""
        started = time.perf_counter()
        task = asyncio.ensure_future(self._decide(request, message_key))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), self.config.budget_ms / 1000)
        except ReplayedRequestError:
            raise
        except TimeoutError:
            answer = self._default(request)
            log.warning("authorization %s: no decision within %d ms, answered %s",
                        request.token, self.config.budget_ms, answer.result)
            self._in_background(request, task, answer)
            return answer
        except Exception:
            log.exception("authorization %s failed; answering the timeout decision", request.token)
            answer = self._default(request)
            self._in_background(request, task, answer)
            return answer
        if outcome.replayed or outcome.card is None:
            return outcome.decision
        decided = time.perf_counter()
        answer = await self._answer(request, outcome, message_key)
        self._log_if_slow(request, outcome, started, decided, time.perf_counter())
        return answer

    def _log_if_slow(self, request: AuthorizationRequest, outcome: _Outcome, started: float, decided: float,
                     recorded: float) -> None:
        """Where a slow answer's time went: deciding (card lookup if not cached, spend limits, the
        ledger hold) or recording. The ledger logs its own slow batches (ledger_server/posting.py)."""
        if recorded - started < SLOW_ANSWER_S or recorded - self._slow_logged_at < 1.0:
            return
        self._slow_logged_at = recorded
        log.warning("slow answer to authorization %s: %.0f ms (deciding %.0f ms%s, recording %.0f ms)",
                    request.token, (recorded - started) * 1000, (decided - started) * 1000,
                    ", card looked up" if outcome.looked_up else "", (recorded - decided) * 1000)

    def _in_background(
        self, request: AuthorizationRequest, task: asyncio.Future[_Outcome], answer: Decision
    ) -> None:
        """Settle the late outcome after answering (bounded: past the bound the webhook settles it)."""
        if len(self._background) < BACKGROUND_MAX:
            late = asyncio.ensure_future(self._settle_late(request, task, answer))
            self._background.add(late)
            late.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for late outcomes still being settled (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _default(self, request: AuthorizationRequest) -> Decision:
        if self.config.timeout_decision == APPROVED:
            return Decision(request.token, APPROVED, request.amount, None, None, timed_out=True)
        return Decision(request.token, DECLINED, 0, "TIMEOUT", None, timed_out=True)

    async def _decide(self, request: AuthorizationRequest, message_key: str) -> _Outcome:
        card = self._cards.get(request.card_token) if self._cards is not None else None
        if card is not None:  # the common case: no lookup; the record checks message and card instead
            return _Outcome(await self._decide_for(request, card), card)
        generation = self._cards.generation() if self._cards is not None else 0
        context = await self._contexts.submit(AuthorizationLookup(request.card_token, request.token, message_key))
        if not context.first_time:
            raise ReplayedRequestError(message_key)
        card = context.card
        if card is None:
            return _Outcome(Decision(request.token, DECLINED, 0, "CARD_NOT_FOUND"), None, looked_up=True)
        if self._cards is not None:
            self._cards.put(card, generation)
        if context.earlier_result is not None:  # a retried request gets the same answer
            assert context.earlier_amount is not None
            earlier = Decision(request.token, context.earlier_result, context.earlier_amount,
                               context.earlier_reason, context.earlier_hold_id)
            return _Outcome(earlier, card, replayed=True, looked_up=True)
        return _Outcome(await self._decide_for(request, card), card, looked_up=True)

    async def _decide_for(self, request: AuthorizationRequest, card: Card) -> Decision:
        """Card controls, spend limits, then the hold."""
        refusal = _control_refusal(card, request)
        if refusal is not None:
            return Decision(request.token, DECLINED, 0, refusal)
        now = dt.datetime.now(dt.UTC)
        allowed = await self._limits.reserve(card, request.amount, request.partial_approval_capable, now, request.token)
        if allowed == 0:
            return Decision(request.token, DECLINED, 0, "SPEND_LIMIT_EXCEEDED")
        decision = await self._hold(request, card, allowed)
        await self._limits.release(card, allowed - decision.approved_amount, now, request.token, "unused")
        return decision

    async def _answer(self, request: AuthorizationRequest, outcome: _Outcome, message_key: str) -> Decision:
        """Record the decision and answer what was recorded. A decision made with a cached card is
        checked as it is recorded: a replayed message is refused, a card changed meanwhile (frozen,
        say) decides again with the card as it is now, and a token answered before keeps its answer.
        A hold placed by a decision that did not become the answer is voided."""
        card, decision = outcome.card, outcome.decision
        assert card is not None
        placed = _holds_of(decision)
        checked = not outcome.looked_up
        recorded = await self._record(request, card, decision, message_key if checked else None,
                                      card.version if checked else None)
        if recorded.stale and not recorded.replayed:  # a replay is refused whatever the card
            if self._cards is not None:
                self._cards.evict(card.token)
            fresh = await self._store.card_by_token(card.token)
            assert fresh is not None, card.token  # cards are never deleted
            card, decision = fresh, await self._decide_for(request, fresh)
            placed.update(_holds_of(decision))
            recorded = await self._record(request, card, decision, None, None)
        final: Decision | None = decision if recorded.answered else None
        if not recorded.answered and recorded.earlier is not None:
            earlier = recorded.earlier
            final = Decision(request.token, earlier.result, earlier.approved, earlier.reason, earlier.hold_id)
        await self._drop_unowned_holds(request, card, placed, recorded, final)
        if recorded.replayed:
            raise ReplayedRequestError(message_key)
        return final if final is not None else decision

    async def _drop_unowned_holds(
        self, request: AuthorizationRequest, card: Card, placed: dict[str, int], recorded: RecordResult,
        final: Decision | None,
    ) -> None:
        """Void each hold this request placed that its transaction does not own (a webhook created the
        transaction with another hold, or the answer is not this decision's), and give its spend
        reservation back when the answer does not hold it either (unknown answer: kept, which can
        only under-admit)."""
        if not placed:
            return
        owner = final.hold_id if final is not None and recorded.answered and recorded.created \
            else await self._store.transaction_hold(request.token)
        for hold_id, amount in placed.items():
            if hold_id == owner:
                continue
            await self._void(request.token, hold_id)
            if final is not None and final.hold_id != hold_id:
                await self._limits.release(card, amount, dt.datetime.now(dt.UTC), request.token, "voided")

    async def _hold(self, request: AuthorizationRequest, card: Card, amount: int) -> Decision:
        accounts = await self._programs.accounts(card.asset)
        lifecycle = self.config.lifecycle
        hold = authorization_hold(card.account_id, accounts, amount, card.id, request.token, lifecycle)
        try:
            placed = await self._create(hold)
            result = APPROVED if amount == request.amount else PARTIAL
            return Decision(request.token, result, amount, None, placed)
        except InsufficientFunds:
            if not request.partial_approval_capable:
                return Decision(request.token, DECLINED, 0, "INSUFFICIENT_FUNDS")
        except IdempotencyKeyReused:
            return Decision(request.token, DECLINED, 0, "DUPLICATE_AUTHORIZATION_TOKEN")
        except Rejected as rejected:
            log.warning("authorization %s: hold refused: %s", request.token, rejected)
            return Decision(request.token, DECLINED, 0, "ACCOUNT_UNAVAILABLE")
        balance = await self._ledger.get_account_balance(account_id=card.account_id)
        available = min(balance.available_balance, amount)
        if available <= 0:
            return Decision(request.token, DECLINED, 0, "INSUFFICIENT_FUNDS")
        partial = replace(hold, amount=available, request_id=hold_request_id(request.token) + ":partial")
        try:
            return Decision(request.token, PARTIAL, available, None, await self._create(partial))
        except (InsufficientFunds, IdempotencyKeyReused):
            return Decision(request.token, DECLINED, 0, "INSUFFICIENT_FUNDS")

    async def _create(self, hold: NewTransfer) -> str:
        return (await self._holds.place(hold)).id

    async def _record(
        self, request: AuthorizationRequest, card: Card, decision: Decision, message_key: str | None,
        card_version: int | None,
    ) -> RecordResult:
        """Store the answer and the transaction's first state (see store.record_authorizations)."""
        approved = decision.approved_amount
        state = TransactionState(
            token=request.token, card_id=card.id, account_id=card.account_id, asset=card.asset,
            auth_total=approved if decision.result != DECLINED else None,
            auth_key=(request.created, "") if decision.result != DECLINED else None,
            closed_reason="declined" if decision.result == DECLINED else None,
            hold_attempted=decision.hold_id is not None or decision.decline_reason == "INSUFFICIENT_FUNDS",
            hold_id=decision.hold_id, hold_amount=approved if decision.hold_id else 0,
            hold_open=decision.hold_id is not None and decision.result != DECLINED,
            review="approved_without_hold" if decision.result != DECLINED and decision.hold_id is None else None,
        )
        return await self._records.submit(AuthorizationRecord(
            request.token, card.id, decision.result, request.amount, approved, decision.decline_reason,
            decision.hold_id, decision.timed_out, state, message_key, card_version,
        ))

    async def _settle_late(
        self, request: AuthorizationRequest, task: asyncio.Future[_Outcome], answer: Decision
    ) -> None:
        """Make the late outcome agree with the answer already given."""
        try:
            outcome: _Outcome | None = await asyncio.wait_for(task, LATE_OUTCOME_WAIT_S)
        except ReplayedRequestError:  # a copy of a request decided on its own path: nothing of this one to settle
            return
        except Exception as error:  # the decision path failed or hangs: the ledger may still hold
            log.warning("authorization %s: late outcome unknown (%s); checking the ledger", request.token, error)
            outcome = None
        try:
            await self._reconcile_late(request, outcome, answer)
        except Exception:
            log.exception("authorization %s: late outcome not settled; the processor's webhook will", request.token)

    async def _reconcile_late(self, request: AuthorizationRequest, outcome: _Outcome | None, answer: Decision) -> None:
        card = outcome.card if outcome is not None else await self._store.card_by_token(request.card_token)
        if card is None or (outcome is not None and outcome.replayed):
            return
        hold_id = outcome.decision.hold_id if outcome is not None else await self._find_hold(request.token)
        held = outcome.decision.approved_amount if outcome is not None and hold_id else 0
        if answer.result == DECLINED:
            if hold_id is not None:
                await self._void(request.token, hold_id)
                await self._limits.release(card, held, dt.datetime.now(dt.UTC), request.token, "voided")
            await self._record(request, card, replace(answer, hold_id=hold_id), None, None)
            return
        recorded = await self._record(request, card, replace(answer, hold_id=hold_id), None, None)
        if hold_id is not None and not recorded.created:  # a webhook made the transaction first
            owner = await self._store.transaction_hold(request.token)
            if owner != hold_id:
                await self._void(request.token, hold_id)

    async def _find_hold(self, token: str) -> str | None:
        for request_id in (hold_request_id(token), hold_request_id(token) + ":partial"):
            try:
                return (await self._ledger.get_transfer(request_id=request_id)).id
            except NotFound:
                continue
        return None

    async def _void(self, token: str, hold_id: str) -> None:
        try:
            await self._ledger.void_pending_transfer(
                pending_id=hold_id, request_id=hold_request_id(token) + ":void",
                metadata={"card_transaction": token, "card_flow": "late_hold_voided"},
            )
        except (PendingAlreadyVoided, PendingExpired):
            pass
        except LedgerError as error:
            if error.reason != "PENDING_ALREADY_POSTED":
                raise


def _holds_of(decision: Decision) -> dict[str, int]:
    """The hold a decision placed, and its amount."""
    return {decision.hold_id: decision.approved_amount} if decision.hold_id and decision.result != DECLINED else {}


def _control_refusal(card: Card, request: AuthorizationRequest) -> str | None:
    if card.state == CardState.FROZEN:
        return "CARD_FROZEN"
    if card.state == CardState.CLOSED:
        return "CARD_CLOSED"
    if request.currency != card.asset:
        return "CURRENCY_MISMATCH"
    if request.merchant.mcc and request.merchant.mcc in card.blocked_mccs:
        return "MCC_BLOCKED"
    return None
