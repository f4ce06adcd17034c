-- Access control and audit: who may call, with which scopes, limited to which tenant; and which
-- caller made every mutation.

-- A caller is an API key (kind 1) or a TLS client certificate subject (kind 2). Keys are stored
-- only as a salted SHA-256 of their 256-bit random secret: high entropy makes a slow hash
-- unnecessary, and a fast one keeps authentication under a millisecond.
CREATE TABLE callers (
    id                   uuid PRIMARY KEY,
    kind                 smallint NOT NULL CHECK (kind IN (1, 2)),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    secret_salt          bytea,
    secret_hash          bytea,
    certificate_subject  text UNIQUE,
    scopes               text[] NOT NULL,
    tenant               text CHECK (tenant IS NULL OR length(tenant) BETWEEN 1 AND 128),
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text NOT NULL,
    revoked_at           timestamptz,
    CONSTRAINT key_has_secret CHECK (kind <> 1 OR (secret_salt IS NOT NULL AND secret_hash IS NOT NULL)),
    CONSTRAINT certificate_has_subject CHECK (kind <> 2 OR certificate_subject IS NOT NULL)
);
COMMENT ON TABLE callers IS 'Who may call the ledger: API keys (hashed) and certificate subjects, with scopes.';

-- Revocation is the only change a caller row ever sees, and only once.
CREATE FUNCTION caller_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
       OR (NEW.id, NEW.kind, NEW.name, NEW.secret_hash, NEW.scopes, NEW.tenant)
          IS DISTINCT FROM (OLD.id, OLD.kind, OLD.name, OLD.secret_hash, OLD.scopes, OLD.tenant) THEN
        RAISE EXCEPTION 'callers are only ever revoked, once' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER callers_revoke_only BEFORE UPDATE OR DELETE ON callers
    FOR EACH ROW EXECUTE FUNCTION caller_revoke_only();

-- The audit trail: every stored outcome names the caller that produced it.
ALTER TABLE request_outcomes ADD COLUMN caller text NOT NULL DEFAULT 'system';
COMMENT ON COLUMN request_outcomes.caller IS 'The authenticated caller (callers.id or subject) of the mutation.';
CREATE INDEX request_outcomes_created ON request_outcomes (created_at, request_id);
