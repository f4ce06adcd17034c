-- The textbook ledger the benchmark compares against (benchmarks/naive_ledger.py): one
-- transaction per transfer, row locks on both accounts, two balance updates, one insert.
-- Lives in its own database; never used by the product.

-- name: create_schema
CREATE TABLE IF NOT EXISTS naive_accounts (
    id       bigint PRIMARY KEY,
    balance  bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE naive_accounts IS 'Baseline ledger: one balance per account, updated in place.';
CREATE TABLE IF NOT EXISTS naive_transfers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    debit_id    bigint NOT NULL REFERENCES naive_accounts (id),
    credit_id   bigint NOT NULL REFERENCES naive_accounts (id),
    amount      bigint NOT NULL CHECK (amount > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE naive_transfers IS 'Baseline ledger: one row per transfer.';

-- name: seed_accounts
INSERT INTO naive_accounts (id) SELECT generate_series(1, %(count)s) ON CONFLICT DO NOTHING;

-- name: lock_pair
-- Both rows in ascending id order, so two transfers over the same pair cannot deadlock.
SELECT id, balance FROM naive_accounts WHERE id IN (%(a)s, %(b)s) ORDER BY id FOR UPDATE;

-- name: debit
UPDATE naive_accounts SET balance = balance - %(amount)s WHERE id = %(id)s;

-- name: credit
UPDATE naive_accounts SET balance = balance + %(amount)s WHERE id = %(id)s;

-- name: insert_transfer
INSERT INTO naive_transfers (debit_id, credit_id, amount) VALUES (%(debit)s, %(credit)s, %(amount)s);

-- name: total_balance
SELECT coalesce(sum(balance), 0), count(*) FROM naive_accounts;
