"""Load harness of the ledger: workloads, baselines, CPU accounting, profile and report (see README.md)."""
