-- The posting engine writes a whole batch in ONE statement (queries/posting.sql: write_effects)
-- and sends COMMIT in the same round trip, so a lost-update check can no longer be made in Python
-- between the write and the commit. This function makes it inside the statement: when the rows
-- updated are not the rows expected (an account's version or a hold's state changed since the
-- batch read them under its locks), it raises a serialization failure, the statement and the
-- COMMIT behind it fail, nothing is written, and the engine retries the batch.
CREATE FUNCTION ledger_write_guard(updated_accounts bigint, expected_accounts bigint,
                                   updated_holds bigint, expected_holds bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF updated_accounts <> expected_accounts OR updated_holds <> expected_holds THEN
        RAISE EXCEPTION 'stale write: % of % accounts, % of % holds updated',
            updated_accounts, expected_accounts, updated_holds, expected_holds
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION ledger_write_guard(bigint, bigint, bigint, bigint) IS
    'Fails the posting engine''s batch write (and its commit) when a row changed since it was read.';
