-- The status dictionary and dispositions (status_dictionary.py, dispositions.py).

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

-- name: lock_attempt
SELECT * FROM attempts WHERE id = $1 FOR UPDATE;

-- name: latest_attempt_of_contact
SELECT id FROM attempts WHERE contact_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1;

-- name: attempt_disposition_exists
SELECT EXISTS (SELECT 1 FROM attempt_dispositions WHERE attempt_id = $1);

-- name: campaign_disposition
SELECT * FROM dispositions WHERE campaign_id = $1 AND name = $2;

-- name: insert_attempt_disposition
INSERT INTO attempt_dispositions (attempt_id, campaign_id, contact_id, disposition_id, name,
                                  action, agent, callback_at, note, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: get_attempt_disposition
SELECT ad.attempt_id, ad.campaign_id, ad.contact_id, ad.name, d.label, ad.action, ad.agent,
       ad.callback_at, ad.note, ad.created_at, ad.applied_at
FROM attempt_dispositions ad JOIN dispositions d ON d.id = ad.disposition_id
WHERE ad.attempt_id = $1;

-- name: pending_attempt_disposition
-- The entry's status detail and delay as they are now; its name and action as set.
SELECT ad.attempt_id, ad.name, ad.action, ad.agent, ad.callback_at, d.status_detail, d.delay_s,
       a.number
FROM attempt_dispositions ad
JOIN dispositions d ON d.id = ad.disposition_id
JOIN attempts a ON a.id = ad.attempt_id
WHERE ad.attempt_id = $1 AND ad.applied_at IS NULL;

-- name: mark_disposition_applied
UPDATE attempt_dispositions SET applied_at = $2 WHERE attempt_id = $1;

-- name: disposition_close_contact
-- Also a contact the engine closed already (connected/success when the call
-- ended): it keeps its closing time, its status becomes the agent's.
UPDATE contacts
SET state = $2, status = $3, status_detail = $4, next_attempt_at = NULL, next_step = NULL,
    next_channel = NULL, next_phone_slot = NULL, callback_agent = NULL,
    closed_at = coalesce(closed_at, now()), updated_at = now()
WHERE id = $1;

-- name: disposition_reopen_contact
UPDATE contacts
SET state = 'pending', status = 'open', status_detail = $2, closed_at = NULL,
    next_attempt_at = $3, next_step = $4, next_channel = $5, next_phone_slot = $6,
    callback_agent = $7, updated_at = now()
WHERE id = $1;

-- name: resume_completed_campaign
UPDATE campaigns SET state = 'running', updated_at = now()
WHERE id = $1 AND state = 'completed';
