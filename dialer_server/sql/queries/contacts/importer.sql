-- Contact import (contacts/importer.py): validated rows are copied into a temporary
-- buffer table, then moved into contacts one chunk at a time.

-- name: contact_import_campaign_region
SELECT default_region FROM campaigns WHERE id = $1;

-- name: contact_import_lock_campaign
-- The campaign cannot be deleted while its import is in progress.
SELECT id FROM campaigns WHERE id = $1 FOR KEY SHARE;

-- name: contact_import_create_buffer
CREATE TEMP TABLE IF NOT EXISTS contact_import_rows (
    external_id text,
    phone1 text, phone2 text, phone3 text, phone4 text, phone5 text,
    param1 text, param2 text, param3 text, param4 text, param5 text, param6 text,
    param7 text, param8 text, param9 text, param10 text, param11 text, param12 text,
    timezone text,
    -- Dedup: a duplicate, stored closed as not_connected/failed/$duplicate.
    duplicate boolean NOT NULL DEFAULT false
) ON COMMIT DROP;

-- name: contact_import_clear_buffer
TRUNCATE contact_import_rows;

-- name: contact_import_move_buffer
-- New contacts are due at once. A contact the campaign already has (same external id)
-- gets the new data fields only: its state, status and schedule are left as they are.
-- $2: the columns the import has; the others keep their stored values.
-- Rows without an external id never conflict (NULLs are distinct): plain inserts.
-- xmax = 0 tells a fresh row from an updated one.
WITH written AS (
    INSERT INTO contacts AS c (
        campaign_id, external_id, phone1, phone2, phone3, phone4, phone5,
        param1, param2, param3, param4, param5, param6, param7, param8, param9, param10,
        param11, param12, timezone, next_attempt_at, state, status, status_detail, closed_at)
    SELECT $1, external_id, phone1, phone2, phone3, phone4, phone5,
           param1, param2, param3, param4, param5, param6, param7, param8, param9, param10,
           param11, param12, timezone,
           CASE WHEN duplicate THEN NULL ELSE now() END,
           CASE WHEN duplicate THEN 'not_connected' ELSE 'pending' END,
           CASE WHEN duplicate THEN 'failed' ELSE 'open' END,
           CASE WHEN duplicate THEN '$duplicate' ELSE '$none' END,
           CASE WHEN duplicate THEN now() END
    FROM contact_import_rows
    ON CONFLICT (campaign_id, external_id) DO UPDATE
    SET phone1 = EXCLUDED.phone1,
        phone2 = CASE WHEN 'phone2' = ANY($2::text[]) THEN EXCLUDED.phone2 ELSE c.phone2 END,
        phone3 = CASE WHEN 'phone3' = ANY($2::text[]) THEN EXCLUDED.phone3 ELSE c.phone3 END,
        phone4 = CASE WHEN 'phone4' = ANY($2::text[]) THEN EXCLUDED.phone4 ELSE c.phone4 END,
        phone5 = CASE WHEN 'phone5' = ANY($2::text[]) THEN EXCLUDED.phone5 ELSE c.phone5 END,
        param1 = CASE WHEN 'param1' = ANY($2::text[]) THEN EXCLUDED.param1 ELSE c.param1 END,
        param2 = CASE WHEN 'param2' = ANY($2::text[]) THEN EXCLUDED.param2 ELSE c.param2 END,
        param3 = CASE WHEN 'param3' = ANY($2::text[]) THEN EXCLUDED.param3 ELSE c.param3 END,
        param4 = CASE WHEN 'param4' = ANY($2::text[]) THEN EXCLUDED.param4 ELSE c.param4 END,
        param5 = CASE WHEN 'param5' = ANY($2::text[]) THEN EXCLUDED.param5 ELSE c.param5 END,
        param6 = CASE WHEN 'param6' = ANY($2::text[]) THEN EXCLUDED.param6 ELSE c.param6 END,
        param7 = CASE WHEN 'param7' = ANY($2::text[]) THEN EXCLUDED.param7 ELSE c.param7 END,
        param8 = CASE WHEN 'param8' = ANY($2::text[]) THEN EXCLUDED.param8 ELSE c.param8 END,
        param9 = CASE WHEN 'param9' = ANY($2::text[]) THEN EXCLUDED.param9 ELSE c.param9 END,
        param10 = CASE WHEN 'param10' = ANY($2::text[]) THEN EXCLUDED.param10 ELSE c.param10 END,
        param11 = CASE WHEN 'param11' = ANY($2::text[]) THEN EXCLUDED.param11 ELSE c.param11 END,
        param12 = CASE WHEN 'param12' = ANY($2::text[]) THEN EXCLUDED.param12 ELSE c.param12 END,
        timezone = CASE WHEN 'timezone' = ANY($2::text[]) THEN EXCLUDED.timezone
                        ELSE c.timezone END,
        updated_at = now()
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM written;

-- name: contact_import_running_campaigns
-- Dedup against every running campaign: their ids, when the import starts.
SELECT id FROM campaigns WHERE state = 'running';

-- name: contact_import_known_numbers
-- Dedup: which of the numbers $2 a contact of the campaigns $1 has (any phone slot; the
-- GIN index contacts_phones_idx), and whether that contact was written by this import
-- (its transaction's time, in the campaign $3). Kept duplicates do not count: the row
-- they repeat does.
SELECT DISTINCT ON (p.number) p.number, c.id, c.campaign_id,
       (c.campaign_id = $3 AND c.created_at = now()) AS this_import
FROM contacts c
CROSS JOIN LATERAL unnest(ARRAY[c.phone1, c.phone2, c.phone3, c.phone4, c.phone5]::text[])
    AS p (number)
WHERE ARRAY[c.phone1, c.phone2, c.phone3, c.phone4, c.phone5]::text[] && $2::text[]
  AND c.campaign_id = ANY ($1::bigint[])
  AND c.status_detail <> '$duplicate'
  AND p.number = ANY ($2::text[])
ORDER BY p.number, c.id;

-- name: contact_import_known_external_ids
-- Rows with these ids update a contact: never duplicates.
SELECT external_id FROM contacts WHERE campaign_id = $1 AND external_id = ANY ($2::text[]);
