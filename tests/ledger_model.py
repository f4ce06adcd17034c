"""An in-memory reference model of the ledger's transfer rules, written independently of the server.

Used by the stateful property test: every operation is applied to the model and to the real server,
and the answers and balances must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

U128_MAX = (1 << 128) - 1


@dataclass
class ModelAccount:
    no_overdraft: bool
    no_overcredit: bool
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


@dataclass
class ModelHold:
    debit: str
    credit: str
    amount: int
    state: str = "PENDING"


@dataclass
class ModelTransfer:
    debit: str
    credit: str
    amount: int
    reversible: bool
    reversed: int = 0


@dataclass
class LedgerModel:
    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    transfers: dict[str, ModelTransfer] = field(default_factory=dict)

    def _limits(self, account: ModelAccount) -> str | None:
        counters = (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)
        if max(counters) > U128_MAX or account.debits_pending + account.debits_posted > U128_MAX \
                or account.credits_pending + account.credits_posted > U128_MAX:
            return "OVERFLOW"
        if account.no_overdraft and account.debits_pending + account.debits_posted > account.credits_posted:
            return "INSUFFICIENT_FUNDS"
        if account.no_overcredit and account.credits_pending + account.credits_posted > account.debits_posted:
            return "CREDIT_LIMIT_EXCEEDED"
        return None

    def _move(self, debit: str, credit: str, pending: int, posted: int) -> str | None:
        """Apply to both sides, or to neither if a limit breaks (debit side checked first)."""
        d, c = self.accounts[debit], self.accounts[credit]
        before = (d.debits_pending, d.debits_posted, c.credits_pending, c.credits_posted)
        d.debits_pending += pending
        d.debits_posted += posted
        c.credits_pending += pending
        c.credits_posted += posted
        reason = self._limits(d) or self._limits(c)
        if reason:
            d.debits_pending, d.debits_posted, c.credits_pending, c.credits_posted = before
        return reason

    def transfer(self, tid: str | None, debit: str, credit: str, amount: int, pending: bool) -> str | None:
        """Returns the rejection reason, or None on success (then records the transfer under tid)."""
        if debit == credit:
            return "SAME_ACCOUNT"
        if debit not in self.accounts or credit not in self.accounts:
            return "ACCOUNT_NOT_FOUND"
        reason = self._move(debit, credit, amount if pending else 0, 0 if pending else amount)
        if reason is None and tid is not None:
            if pending:
                self.holds[tid] = ModelHold(debit, credit, amount)
            else:
                self.transfers[tid] = ModelTransfer(debit, credit, amount, reversible=True)
        return reason

    def settle(self, tid: str | None, hold_id: str, post: bool, amount: int | None) -> str | None:
        hold = self.holds.get(hold_id)
        if hold is None:
            return "PENDING_NOT_FOUND"
        if hold.state != "PENDING":
            return {"POSTED": "PENDING_ALREADY_POSTED", "VOIDED": "PENDING_ALREADY_VOIDED"}[hold.state]
        posted = 0
        if post:
            posted = hold.amount if amount is None else amount
            if posted > hold.amount:
                return "EXCEEDS_PENDING_AMOUNT"
        reason = self._move(hold.debit, hold.credit, -hold.amount, posted)
        assert reason is None, reason  # settling never breaks a limit
        hold.state = "POSTED" if post else "VOIDED"
        if post and tid is not None:
            self.transfers[tid] = ModelTransfer(hold.debit, hold.credit, posted, reversible=True)
        return None

    def adjust(self, hold_id: str, amount: int) -> str | None:
        hold = self.holds.get(hold_id)
        if hold is None:
            return "PENDING_NOT_FOUND"
        if hold.state != "PENDING":
            return {"POSTED": "PENDING_ALREADY_POSTED", "VOIDED": "PENDING_ALREADY_VOIDED"}[hold.state]
        if amount == hold.amount:
            return "PENDING_AMOUNT_UNCHANGED"
        reason = self._move(hold.debit, hold.credit, amount - hold.amount, 0)
        if reason is None:
            hold.amount = amount
        return reason

    def reverse(self, tid: str | None, original_id: str, amount: int | None) -> str | None:
        original = self.transfers.get(original_id)
        if original is None:
            return "TRANSFER_NOT_REVERSIBLE" if original_id in self.holds else "TRANSFER_NOT_FOUND"
        if not original.reversible:
            return "TRANSFER_NOT_REVERSIBLE"
        remaining = original.amount - original.reversed
        amount = remaining if amount is None else amount
        if amount == 0 or amount > remaining:
            return "EXCEEDS_REVERSIBLE_AMOUNT"
        reason = self._move(original.credit, original.debit, 0, amount)
        if reason is None:
            original.reversed += amount
            if tid is not None:
                self.transfers[tid] = ModelTransfer(original.credit, original.debit, amount, reversible=False)
        return reason
