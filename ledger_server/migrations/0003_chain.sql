-- Chain deposits and withdrawals (docs/chain.md): the registry written by the ledger's chain RPCs,
-- the state the chain watcher and the withdrawal signer keep (through their own connections) and
-- the alerts they raise. Money itself only ever moves through the ledger's transfers; these tables
-- say which on-chain event a transfer stands for and how far each one got.

-- An unsigned 256-bit integer: an on-chain amount as seen (it may exceed what the ledger holds).
CREATE DOMAIN u256 AS numeric(78, 0)
    CHECK (VALUE >= 0 AND VALUE <= 115792089237316195423570985008687907853269984665640564039457584007913129639935);

-- Watched assets: which token contract (or the native coin) on which chain is which ledger asset,
-- after how many confirmations its deposits count, and the ledger account mirroring the hot wallet.
CREATE TABLE chain_assets (
    chain_id            bigint NOT NULL CHECK (chain_id > 0),
    asset               text NOT NULL REFERENCES assets (code),
    contract_address    text NOT NULL CHECK (contract_address = '' OR contract_address ~ '^0x[0-9a-f]{40}$'),
    decimals            smallint NOT NULL CHECK (decimals BETWEEN 0 AND 18),
    confirmations       integer NOT NULL CHECK (confirmations BETWEEN 1 AND 1000),
    omnibus_account_id  uuid NOT NULL REFERENCES accounts (id),
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (chain_id, asset),
    CONSTRAINT one_asset_per_contract UNIQUE (chain_id, contract_address)
);
COMMENT ON TABLE chain_assets IS 'Registry: assets the chain watcher follows, per chain (RegisterChainAsset).';

-- Deposit addresses: incoming transfers of `asset` to `address` are credited to `account_id`.
CREATE TABLE deposit_addresses (
    chain_id    bigint NOT NULL,
    address     text NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    asset       text NOT NULL,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (chain_id, address, asset),
    FOREIGN KEY (chain_id, asset) REFERENCES chain_assets (chain_id, asset)
);
COMMENT ON TABLE deposit_addresses IS 'Registry: which ledger account an address pays into, per asset (RegisterDepositAddress).';
CREATE INDEX deposit_addresses_account ON deposit_addresses (account_id);

-- The watcher's checkpoint: the last block it processed (number and hash), written in the same
-- transaction as the blocks and deposits it recorded, so a restart resumes exactly there.
CREATE TABLE chain_cursors (
    chain_id      bigint PRIMARY KEY,
    start_block   bigint NOT NULL CHECK (start_block >= 0),
    block_number  bigint NOT NULL CHECK (block_number >= -1),
    block_hash    text,
    head_number   bigint NOT NULL DEFAULT -1,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT hash_once_started CHECK (block_number < start_block OR block_hash IS NOT NULL)
);
COMMENT ON TABLE chain_cursors IS 'Checkpoint per chain: last processed block and hash; the node head seen with it.';

-- Every block the watcher processed on its canonical chain (recent ones: pruned behind the
-- checkpoint). Reorgs are found by comparing a new block's parent hash with the stored hash.
CREATE TABLE chain_blocks (
    chain_id     bigint NOT NULL,
    number       bigint NOT NULL CHECK (number >= 0),
    hash         text NOT NULL,
    parent_hash  text NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (chain_id, number)
);
COMMENT ON TABLE chain_blocks IS 'The watcher''s recent canonical chain: number, hash and parent hash per block.';

-- Deposits seen, keyed by what survives re-inclusion in another block: the transaction and the
-- position within it ("native" for its value, "log:<n>" for its n-th receipt log).
-- state: 1 SEEN, 3 CREDITED, 4 ORPHANED, 5 REVERSAL_PENDING, 6 REVERSED, 7 HELD, 8 REJECTED
-- (ledger.v1.DepositState; CONFIRMED is SEEN with enough confirmations, derived on read).
-- generation counts credits: a deposit reversed by a deep reorg and then mined again is credited
-- again under a new request id.
CREATE TABLE chain_deposits (
    chain_id              bigint NOT NULL,
    tx_hash               text NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    position              text NOT NULL CHECK (position = 'native' OR position ~ '^log:[0-9]+$'),
    address               text NOT NULL,
    asset                 text NOT NULL,
    account_id            uuid NOT NULL REFERENCES accounts (id),
    from_address          text NOT NULL,
    amount                u256 NOT NULL,
    state                 smallint NOT NULL CHECK (state IN (1, 3, 4, 5, 6, 7, 8)),
    block_number          bigint NOT NULL,
    block_hash            text NOT NULL,
    generation            integer NOT NULL DEFAULT 0 CHECK (generation >= 0),
    credit_request_id     text,
    credit_transfer_id    uuid REFERENCES transfers (id),
    reversal_transfer_id  uuid REFERENCES transfers (id),
    first_seen_at         timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, position),
    CONSTRAINT credited_has_transfer CHECK (state NOT IN (3, 5, 6) OR credit_transfer_id IS NOT NULL),
    CONSTRAINT reversed_has_reversal CHECK (state <> 6 OR reversal_transfer_id IS NOT NULL)
);
COMMENT ON TABLE chain_deposits IS 'Deposits the watcher saw and how far each got (pending ones included, for support).';
CREATE INDEX chain_deposits_account ON chain_deposits (account_id, first_seen_at DESC);
CREATE INDEX chain_deposits_address ON chain_deposits (address, first_seen_at DESC);
CREATE INDEX chain_deposits_open ON chain_deposits (chain_id, block_number) WHERE state IN (1, 5);

-- Loud, permanent record of what an operator must look at (deep reorgs, refused credits, nonce
-- conflicts). Append-only like the money tables.
CREATE TABLE chain_alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id    bigint NOT NULL,
    kind        text NOT NULL,
    subject     text NOT NULL,
    message     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE chain_alerts IS 'Alert events raised by the chain watcher and signer (ListChainAlerts).';
CREATE TRIGGER chain_alerts_append_only BEFORE UPDATE OR DELETE ON chain_alerts
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();

-- Withdrawals: a hold on the account, then one on-chain transaction from the hot wallet.
-- state: ledger.v1.WithdrawalState (1 REQUESTED .. 8 REJECTED).
CREATE TABLE withdrawals (
    id                  uuid PRIMARY KEY,
    request_id          text NOT NULL UNIQUE,
    request_hash        bytea NOT NULL CHECK (length(request_hash) = 32),
    account_id          uuid NOT NULL REFERENCES accounts (id),
    chain_id            bigint NOT NULL,
    asset               text NOT NULL,
    to_address          text NOT NULL CHECK (to_address ~ '^0x[0-9a-f]{40}$'),
    amount              u128 NOT NULL CHECK (amount > 0),
    state               smallint NOT NULL CHECK (state BETWEEN 1 AND 8),
    hold_id             uuid REFERENCES transfers (id),
    from_address        text,
    nonce               bigint CHECK (nonce >= 0),
    tx_hash             text,
    mined_block_number  bigint,
    mined_block_hash    text,
    confirmations       integer NOT NULL DEFAULT 0,
    settle_transfer_id  uuid REFERENCES transfers (id),
    failure_reason      text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    FOREIGN KEY (chain_id, asset) REFERENCES chain_assets (chain_id, asset),
    CONSTRAINT held_has_hold CHECK (state IN (1, 8) OR hold_id IS NOT NULL),
    CONSTRAINT signed_has_nonce CHECK (state NOT IN (3, 4, 5, 6) OR nonce IS NOT NULL)
);
COMMENT ON TABLE withdrawals IS 'Withdrawal requests and their progress from hold to posted (or voided).';
-- The nonce manager's guarantee, below the application: a nonce of the hot wallet is never given twice.
CREATE UNIQUE INDEX withdrawals_nonce ON withdrawals (chain_id, from_address, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX withdrawals_open ON withdrawals (chain_id, state) WHERE state IN (1, 2, 3, 4, 5);

-- Every signed transaction of a withdrawal (the first, fee bumps, a cancellation that fills a
-- dropped nonce), stored before it is broadcast so a restart re-sends exactly the same bytes.
CREATE TABLE withdrawal_attempts (
    withdrawal_id             uuid NOT NULL REFERENCES withdrawals (id),
    attempt                   integer NOT NULL CHECK (attempt >= 0),
    kind                      text NOT NULL CHECK (kind IN ('transfer', 'cancel')),
    nonce                     bigint NOT NULL,
    tx_hash                   text NOT NULL UNIQUE,
    raw_tx                    bytea NOT NULL,
    max_fee_per_gas           numeric(78, 0) NOT NULL,
    max_priority_fee_per_gas  numeric(78, 0) NOT NULL,
    created_at                timestamptz NOT NULL,
    broadcast_at              timestamptz,
    PRIMARY KEY (withdrawal_id, attempt)
);
COMMENT ON TABLE withdrawal_attempts IS 'Signed transactions per withdrawal, kept so re-broadcasts and restarts reuse them.';

-- The nonce manager: the next nonce of each hot wallet. Taken in the same transaction that binds
-- it to a withdrawal, so a nonce is never reused and never skipped.
CREATE TABLE chain_nonces (
    chain_id    bigint NOT NULL,
    address     text NOT NULL,
    next_nonce  bigint NOT NULL CHECK (next_nonce >= 0),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (chain_id, address)
);
COMMENT ON TABLE chain_nonces IS 'Next nonce per hot wallet, advanced only together with the withdrawal that uses it.';
