-- Manual moves of the contacts a filter selects (flows/moves.py).

-- name: select_contacts
-- The contacts of campaign $1 the filter selects ($2 tasks, where NULL is the first
-- task $3; $4 states, $5 statuses, $6 status details, $7 ids; NULL: any), locked in
-- id order until the transaction ends; busy: a call or a task runs for it now.
SELECT c.id,
       EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.state <> 'ended')
       OR EXISTS (SELECT 1 FROM task_runs r WHERE r.contact_id = c.id AND r.state = 'running')
       AS busy
FROM contacts c
WHERE c.campaign_id = $1
  AND ($2::text[] IS NULL OR coalesce(c.task, $3::text) = ANY ($2::text[]))
  AND ($4::text[] IS NULL OR c.state = ANY ($4::text[]))
  AND ($5::text[] IS NULL OR c.status = ANY ($5::text[]))
  AND ($6::text[] IS NULL OR c.status_detail = ANY ($6::text[]))
  AND ($7::bigint[] IS NULL OR c.id = ANY ($7::bigint[]))
ORDER BY c.id
LIMIT $8
FOR UPDATE OF c;

-- name: log_manual_status
-- A status set by hand ends the task like a run would: the task log says so.
INSERT INTO task_runs (campaign_id, contact_id, task, task_type, pass, try, idempotency_key,
                       state, status, status_detail, started_at, ended_at, error)
VALUES ($1, $2, $3, $4, $5, 1, $6, 'ended', $7, $8, clock_timestamp(), clock_timestamp(), $9);
