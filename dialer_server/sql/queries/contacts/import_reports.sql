-- Import reports (contacts/import_reports.py): every import's counts, and every problem
-- of its rejected rows (up to a cap) for GET /api/v1/imports/{id}/report.

-- name: import_report_new_id
-- Taken before the import runs: its problems are spooled under it as they come.
SELECT nextval(pg_get_serial_sequence('imports', 'id'));

-- name: import_report_purge
-- Reports past their time go when the next one is written (GET already ignores them).
DELETE FROM imports WHERE expires_at <= now();

-- name: import_report_insert
-- Nothing when the campaign was deleted since its import ended: the report goes with it.
INSERT INTO imports (id, campaign_id, source, file_name, received, inserted, updated,
                     rejected_rows, problems, listed, stored, expires_at, duplicates, options)
SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11,
       now() + make_interval(secs => $12::double precision), $13, $14::jsonb
FROM campaigns WHERE id = $2 FOR KEY SHARE
RETURNING id;

-- name: import_report_get
SELECT id, campaign_id, source, file_name, received, inserted, updated, rejected_rows,
       problems, listed, stored, created_at, expires_at, duplicates, options
FROM imports WHERE id = $1 AND expires_at > now();

-- name: import_report_problems
-- A page of a report's problems in their order (keyset on the position).
SELECT position, row_number, field, reason
FROM import_problems
WHERE import_id = $1 AND position > $2
ORDER BY position
LIMIT $3;
