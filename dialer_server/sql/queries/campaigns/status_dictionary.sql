-- The status dictionaries, global and per campaign (campaigns/status_dictionary.py).

-- name: list_dictionary
-- One dictionary ($1 NULL: the global one); $2, $3 filter by active and hidden.
SELECT * FROM dispositions
WHERE campaign_id IS NOT DISTINCT FROM $1::bigint
  AND ($2::boolean IS NULL OR active = $2::boolean)
  AND ($3::boolean IS NULL OR hidden = $3::boolean)
ORDER BY id;

-- name: get_dictionary_entry
SELECT * FROM dispositions WHERE campaign_id IS NOT DISTINCT FROM $1::bigint AND name = $2;

-- name: lock_dictionary_entry
SELECT * FROM dispositions WHERE campaign_id IS NOT DISTINCT FROM $1::bigint AND name = $2
FOR UPDATE;

-- name: insert_dictionary_entry
INSERT INTO dispositions (campaign_id, name, label, description, action, status_detail,
                          delay_s, active, hidden, auto_add)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (coalesce(campaign_id, 0), name) DO NOTHING
RETURNING *;

-- name: update_dictionary_entry
UPDATE dispositions
SET name = $2, label = $3, description = $4, action = $5, status_detail = $6, delay_s = $7,
    active = $8, hidden = $9, auto_add = $10, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: dictionary_name_taken
SELECT EXISTS (SELECT 1 FROM dispositions
               WHERE campaign_id IS NOT DISTINCT FROM $1::bigint AND name = $2 AND id <> $3);

-- name: dictionary_entry_in_use
SELECT EXISTS (SELECT 1 FROM attempt_dispositions WHERE disposition_id = $1);

-- name: delete_dictionary_entry
DELETE FROM dispositions WHERE id = $1;
