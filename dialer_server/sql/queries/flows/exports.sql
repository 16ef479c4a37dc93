-- Export tasks' rows and files (flows/exports.py).

-- name: export_row
-- The contact's row as the results export has it (campaigns/export.py's columns),
-- its status and detail those it ended its previous task with, and today in its
-- campaign's time zone.
SELECT c.id AS contact_id, c.external_id,
       c.phone1, c.phone2, c.phone3, c.phone4, c.phone5,
       c.param1, c.param2, c.param3, c.param4, c.param5, c.param6,
       c.param7, c.param8, c.param9, c.param10, c.param11, c.param12,
       c.timezone, c.state,
       coalesce(prev.status, c.status) AS status,
       coalesce(prev.status_detail, c.status_detail) AS status_detail,
       (SELECT count(*) FROM attempts a WHERE a.contact_id = c.id) AS attempts,
       last.outcome AS last_outcome, last.number AS last_number,
       last.created_at AS last_attempt_at, c.next_attempt_at, c.closed_at,
       (now() AT TIME ZONE ca.timezone)::date AS day
FROM contacts c
JOIN campaigns ca ON ca.id = c.campaign_id
LEFT JOIN LATERAL (
    SELECT a.outcome, a.number, a.created_at FROM attempts a WHERE a.contact_id = c.id
    ORDER BY a.created_at DESC, a.id DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT r.status, r.status_detail FROM task_runs r
    WHERE r.contact_id = c.id AND r.state = 'ended' AND r.status <> 'open'
    ORDER BY r.id DESC LIMIT 1
) prev ON true
WHERE c.id = $1;

-- name: insert_export_row
INSERT INTO task_export_rows (idempotency_key, campaign_id, task, day, contact_id, row)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING seq;

-- name: count_export_row
INSERT INTO task_export_files (campaign_id, task, day, format, rows)
VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (campaign_id, task, day) DO UPDATE SET rows = task_export_files.rows + 1;

-- name: file_rows
SELECT row::text AS row FROM task_export_rows
WHERE campaign_id = $1 AND task = $2 AND day = $3
ORDER BY seq;

-- name: list_files
SELECT task, day, format, rows, written_rows, written_at FROM task_export_files
WHERE campaign_id = $1 ORDER BY day DESC, task;

-- name: get_file
SELECT task, day, format, rows, written_rows, written_at FROM task_export_files
WHERE campaign_id = $1 AND task = $2 AND day = $3;

-- name: lock_file
SELECT pg_advisory_xact_lock($1, hashtext($2));

-- name: file_written
UPDATE task_export_files SET written_rows = $4, written_at = now()
WHERE campaign_id = $1 AND task = $2 AND day = $3;

-- name: stale_files
SELECT campaign_id, task, day FROM task_export_files WHERE written_rows < rows
ORDER BY campaign_id, day LIMIT $1;
