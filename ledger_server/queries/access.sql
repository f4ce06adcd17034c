-- Named queries of access control (ledger_server/access/).

-- name: caller_by_id
SELECT id, kind, name, secret_salt, secret_hash, certificate_subject, scopes, tenant, created_at,
       created_by, revoked_at
FROM callers WHERE id = %(id)s;

-- name: caller_by_subject
SELECT id, kind, name, secret_salt, secret_hash, certificate_subject, scopes, tenant, created_at,
       created_by, revoked_at
FROM callers WHERE certificate_subject = %(subject)s;

-- name: insert_caller
INSERT INTO callers (id, kind, name, secret_salt, secret_hash, certificate_subject, scopes, tenant,
                     created_at, created_by)
VALUES (%(id)s, %(kind)s, %(name)s, %(salt)s, %(hash)s, %(subject)s, %(scopes)s, %(tenant)s, %(now)s,
        %(created_by)s)
ON CONFLICT DO NOTHING
RETURNING id, kind, name, secret_salt, secret_hash, certificate_subject, scopes, tenant, created_at,
          created_by, revoked_at;

-- name: revoke_caller
UPDATE callers SET revoked_at = %(now)s WHERE id = %(id)s AND revoked_at IS NULL
RETURNING id, kind, name, secret_salt, secret_hash, certificate_subject, scopes, tenant, created_at,
          created_by, revoked_at;

-- name: list_callers
SELECT id, kind, name, secret_salt, secret_hash, certificate_subject, scopes, tenant, created_at,
       created_by, revoked_at
FROM callers WHERE id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: list_audit_records
-- Keyset on (created_at, request_id), the index request_outcomes_created.
SELECT request_id, operation, caller, grpc_code, created_at
FROM request_outcomes
WHERE (created_at, request_id) > (%(after_time)s, %(after_id)s)
  AND (%(caller)s::text IS NULL OR caller = %(caller)s::text)
ORDER BY created_at, request_id
LIMIT %(limit)s;

-- name: account_tenants
-- Tenant tags of accounts (immutable once created, so safe to cache).
SELECT id, metadata ->> 'tenant' FROM accounts WHERE id = ANY(%(ids)s::uuid[]);

-- name: transfer_accounts
-- The two accounts of transfers (immutable, so safe to cache).
SELECT id, debit_account_id, credit_account_id FROM transfers WHERE id = ANY(%(ids)s::uuid[]);
