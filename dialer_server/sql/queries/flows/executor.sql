-- The task executor (flows/executor.py): leasing due tasks, the task log, the
-- contact's next step.

-- name: claim_due_tasks
-- The one way tasks are leased: due tasks of open contacts of running campaigns,
-- oldest first,
-- skipping rows another daemon holds; their due time cleared in the same
-- statement, so no other daemon takes them until their run has ended.
WITH due AS (
    SELECT c.id FROM contacts c
    JOIN campaigns ca ON ca.id = c.campaign_id AND ca.state = 'running'
    WHERE c.task_due_at IS NOT NULL AND c.task_due_at <= now() AND c.closed_at IS NULL
    ORDER BY c.task_due_at
    LIMIT $1
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE contacts c SET task_due_at = NULL, updated_at = now()
FROM due, campaigns ca
WHERE c.id = due.id AND ca.id = c.campaign_id
RETURNING c.*, ca.flow_id, ca.name AS campaign_name;

-- name: drop_task
-- A due task its flow does not have (never written by the engine): the contact ends.
UPDATE contacts SET closed_at = now(), status = 'failed', status_detail = '$error',
                    updated_at = now()
WHERE id = $1;

-- name: insert_run
INSERT INTO task_runs (campaign_id, contact_id, task, task_type, pass, try, idempotency_key,
                       instance_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: end_run
-- A run ends once: one that was taken over (interrupted) stays as it is.
UPDATE task_runs
SET state = 'ended', status = $2, status_detail = $3, error = $4, ended_at = clock_timestamp()
WHERE id = $1 AND state = 'running'
RETURNING id;

-- name: note_move
UPDATE task_runs SET moved_to = $2 WHERE id = $1;

-- name: retry_task
-- A temporary failure: the same pass (same key) again at $3.
UPDATE contacts SET task_tries = $2, task_due_at = $3, updated_at = now() WHERE id = $1;

-- name: interrupt_orphaned_runs
-- Runs of daemons that are gone (no advisory lock (1684, instance id), as for
-- attempts): interrupted, and their contacts due again with the same key, unless
-- something moved or closed them meanwhile. Never this daemon's own ($1).
WITH orphaned AS (
    UPDATE task_runs r
    SET state = 'interrupted', ended_at = clock_timestamp(),
        error = 'its daemon stopped before the task ended: run again with the same key'
    WHERE r.state = 'running' AND r.task_type <> 'call'
      AND r.instance_id IS DISTINCT FROM $1
      AND NOT EXISTS (
          SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = 1684::oid AND l.objid = r.instance_id::oid AND l.objsubid = 2)
    RETURNING r.campaign_id, r.contact_id, r.task, r.idempotency_key, r.try
)
UPDATE contacts c
SET task_due_at = now(), task_tries = o.try, updated_at = now()
FROM orphaned o
WHERE c.id = o.contact_id AND c.task_key = o.idempotency_key AND c.closed_at IS NULL
  AND c.task_due_at IS NULL
RETURNING c.id AS contact_id, o.campaign_id, o.task;

-- name: previous_run
-- The task the contact came from, and how it ended there.
SELECT task, status, status_detail FROM task_runs
WHERE contact_id = $1 AND id < $2 AND state = 'ended' AND status <> 'open'
ORDER BY id DESC LIMIT 1;

-- name: sms_number_on_dnc
SELECT EXISTS (
    SELECT 1 FROM dnc_numbers
    WHERE number = $1 AND (campaign_id IS NULL OR campaign_id = $2)
);

-- name: campaign_by_name
SELECT id FROM campaigns WHERE name = $1;

-- name: insert_new_contact
-- A copy of contact $1 in campaign $2, due at once (the start of its flow); none
-- when that campaign has a contact with the same external id.
INSERT INTO contacts (campaign_id, external_id, phone1, phone2, phone3, phone4, phone5,
                      param1, param2, param3, param4, param5, param6, param7, param8,
                      param9, param10, param11, param12, timezone, next_attempt_at)
SELECT $2, external_id, phone1, phone2, phone3, phone4, phone5,
       param1, param2, param3, param4, param5, param6, param7, param8,
       param9, param10, param11, param12, timezone, now()
FROM contacts WHERE id = $1
ON CONFLICT (campaign_id, external_id) DO NOTHING
RETURNING id;
