-- The audit log of every write through the API or the desk (accounts/audit.py).

-- name: insert_audit
INSERT INTO audit_log (user_id, username, role, via, action, method, path, target_type,
                       target_id, before, after)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb)
RETURNING id;

-- name: list_audit
-- Newest first; keyset paging on id ($1: only ids below it, 0: from the newest).
SELECT id, at, user_id, username, role, via, action, method, path, target_type, target_id,
       before, after
FROM audit_log
WHERE ($1 = 0 OR id < $1)
  AND ($2::text IS NULL OR username = $2::text)
  AND ($3::text IS NULL OR action = $3::text)
  AND ($4::text IS NULL OR target_type = $4::text)
  AND ($5::text IS NULL OR target_id = $5::text)
  AND ($6::timestamptz IS NULL OR at >= $6::timestamptz)
  AND ($7::timestamptz IS NULL OR at < $7::timestamptz)
ORDER BY id DESC
LIMIT $8;

-- name: delete_old_audit
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < now() - make_interval(secs => $1) LIMIT $2
);

-- name: transaction_wrote
-- Non-NULL once the transaction wrote a row: what the API audits by default.
SELECT pg_current_xact_id_if_assigned();
