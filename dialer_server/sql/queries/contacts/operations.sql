-- Contact operations of the HTTP API (contacts/operations.py).

-- name: contact_by_external_id
SELECT * FROM contacts WHERE campaign_id = $1 AND external_id = $2;

-- name: list_contacts
-- Keyset pagination by id; every filter is optional (NULL). $6: the numbers a
-- phone filter may be stored as (as given, and in E.164).
SELECT * FROM contacts
WHERE campaign_id = $1 AND id > $2
  AND ($3::text IS NULL OR state = $3::text)
  AND ($4::text IS NULL OR status = $4::text)
  AND ($5::text IS NULL OR status_detail = $5::text)
  AND ($6::text[] IS NULL OR phone1 = ANY ($6::text[]) OR phone2 = ANY ($6::text[])
       OR phone3 = ANY ($6::text[]) OR phone4 = ANY ($6::text[]) OR phone5 = ANY ($6::text[]))
ORDER BY id
LIMIT $7;

-- name: update_contact_fields
UPDATE contacts
SET phone1 = $2, phone2 = $3, phone3 = $4, phone4 = $5, phone5 = $6,
    param1 = $7, param2 = $8, param3 = $9, param4 = $10, param5 = $11, param6 = $12,
    param7 = $13, param8 = $14, param9 = $15, param10 = $16, param11 = $17, param12 = $18,
    timezone = $19, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: cancel_contact
UPDATE contacts
SET state = 'cancelled', status = 'failed', status_detail = '$cancelled',
    next_attempt_at = NULL, next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, task_due_at = NULL, closed_at = now(), updated_at = now()
WHERE id = $1
RETURNING *;

-- name: reschedule_contact
-- Reopens the contact: due at $2, at step $3 (NULL: the strategy's first
-- action is decided again when it is claimed).
UPDATE contacts
SET state = 'pending', status = 'open', status_detail = '$none', closed_at = NULL,
    next_attempt_at = $2, next_step = $3, next_channel = $4, next_phone_slot = $5,
    callback_agent = NULL, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: export_results
-- One row per contact with its attempts count and its last attempt.
SELECT c.id AS contact_id, c.external_id,
       c.phone1, c.phone2, c.phone3, c.phone4, c.phone5,
       c.param1, c.param2, c.param3, c.param4, c.param5, c.param6,
       c.param7, c.param8, c.param9, c.param10, c.param11, c.param12,
       c.timezone, c.state, c.status, c.status_detail,
       coalesce(last.attempts, 0) AS attempts, last.outcome AS last_outcome,
       last.number AS last_number, last.created_at AS last_attempt_at,
       c.next_attempt_at, c.closed_at
FROM contacts c
LEFT JOIN LATERAL (
    SELECT count(*) OVER () AS attempts, a.outcome, a.number, a.created_at
    FROM attempts a WHERE a.contact_id = c.id
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT 1
) last ON true
WHERE c.campaign_id = $1
ORDER BY c.id;
