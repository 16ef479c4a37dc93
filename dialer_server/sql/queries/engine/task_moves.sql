-- A contact's moves through its campaign's flow (engine/task_moves.py).

-- name: flow_definition
SELECT definition::text FROM flows WHERE id = $1;

-- name: campaign_flow_id
SELECT flow_id FROM campaigns WHERE id = $1;

-- name: lock_flow_contact
SELECT c.*, ca.flow_id FROM contacts c JOIN campaigns ca ON ca.id = c.campaign_id
WHERE c.id = $1
FOR UPDATE OF c;

-- name: log_call_task
-- A call task's run: from its pass's start ($6) to its strategy's close, now.
INSERT INTO task_runs (campaign_id, contact_id, task, task_type, pass, try, idempotency_key,
                       state, status, status_detail, started_at, ended_at)
VALUES ($1, $2, $3, 'call', $4, 1, $5, 'ended', $7, $8, $6, clock_timestamp());

-- name: close_in_task
-- The contact ends in its task: closed with its status, nothing planned.
UPDATE contacts
SET state = $2, status = $3, status_detail = $4, next_attempt_at = NULL, next_step = NULL,
    next_channel = NULL, next_phone_slot = NULL, callback_agent = NULL, task_due_at = NULL,
    closed_at = now(), updated_at = now()
WHERE id = $1;

-- name: enter_task
-- Into a task other than call ($2), a new pass ($3 its key, $4 its number, $5 every
-- task's passes), due at $7: open, nothing planned for the call claim.
UPDATE contacts
SET task = $2, task_key = $3, task_pass = $4, task_passes = $5::jsonb, task_tries = 0,
    task_entered_at = now(), task_due_at = $7, state = $6, status = 'open',
    status_detail = '$none', closed_at = NULL, next_attempt_at = NULL, next_step = NULL,
    next_channel = NULL, next_phone_slot = NULL, callback_agent = NULL, preview_agent = NULL,
    preview_offered_at = NULL, updated_at = now()
WHERE id = $1;

-- name: enter_call_task
-- Into a call task: pending, its strategy's plan for the call claim ($7 the due time,
-- $8-$10 the step, channel and phone slot; NULL when it ends at once).
UPDATE contacts
SET task = $2, task_key = $3, task_pass = $4, task_passes = $5::jsonb, task_tries = 0,
    task_entered_at = now(), task_due_at = NULL,
    state = CASE WHEN $7::timestamptz IS NULL THEN $6 ELSE 'pending' END, status = 'open',
    status_detail = '$none', closed_at = NULL, next_attempt_at = $7, next_step = $8,
    next_channel = $9, next_phone_slot = $10, callback_agent = NULL, preview_agent = NULL,
    preview_offered_at = NULL, updated_at = now()
WHERE id = $1;
