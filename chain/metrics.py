"""Prometheus metrics of the chain daemons (served on --metrics-listen)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WatcherMetrics:
    """One registry per watcher, so tests can run several in one process."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.leader = Gauge("chain_watcher_leader", "1 while this watcher holds the chain's leadership", registry=r)
        self.head_block = Gauge("chain_watcher_head_block", "Latest block number the node reported", registry=r)
        self.checkpoint_block = Gauge("chain_watcher_checkpoint_block", "Last processed block", registry=r)
        self.node_up = Gauge("chain_watcher_node_up", "0 while the node is failing and the watcher backs off",
                             registry=r)
        self.node_errors = Counter("chain_watcher_node_errors_total", "Failed node calls, by kind", ["kind"],
                                   registry=r)
        self.backoff_seconds = Gauge("chain_watcher_backoff_seconds", "Current backoff delay (0: none)", registry=r)
        self.log_range_blocks = Gauge("chain_watcher_log_range_blocks", "Blocks per eth_getLogs range now",
                                      registry=r)
        self.range_shrinks = Counter("chain_watcher_log_range_shrinks_total",
                                     "Times the node refused a range and it was halved", registry=r)
        self.reorgs = Counter("chain_watcher_reorgs_total", "Reorgs detected (parent hash mismatch)", registry=r)
        self.reorg_depth = Histogram("chain_watcher_reorg_depth_blocks", "Blocks orphaned per reorg",
                                     buckets=(1, 2, 3, 5, 10, 20, 50, 100, 250, 500), registry=r)
        self.deposits = Counter("chain_watcher_deposits_total", "Deposit state changes, by state", ["state"],
                                registry=r)
        self.ledger_errors = Counter("chain_watcher_ledger_errors_total", "Ledger calls that failed, by kind",
                                     ["kind"], registry=r)
        self.alerts = Counter("chain_watcher_alerts_total", "Alert events raised, by kind", ["kind"], registry=r)


class SignerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.leader = Gauge("chain_signer_leader", "1 while this signer holds the hot wallet's leadership", registry=r)
        self.node_up = Gauge("chain_signer_node_up", "0 while the node is failing", registry=r)
        self.node_errors = Counter("chain_signer_node_errors_total", "Failed node calls", ["kind"], registry=r)
        self.withdrawals = Counter("chain_signer_withdrawals_total", "Withdrawal state changes, by state", ["state"],
                                   registry=r)
        self.broadcasts = Counter("chain_signer_broadcasts_total", "Transactions (re-)broadcast, by result",
                                  ["result"], registry=r)
        self.fee_bumps = Counter("chain_signer_fee_bumps_total", "Replacements with a higher fee", registry=r)
        self.next_nonce = Gauge("chain_signer_next_nonce", "Next nonce the nonce manager will give", registry=r)
        self.alerts = Counter("chain_signer_alerts_total", "Alert events raised, by kind", ["kind"], registry=r)
