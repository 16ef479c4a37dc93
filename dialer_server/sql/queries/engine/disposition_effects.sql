-- Applying an agent's disposition to its contact (engine/disposition_effects.py).

-- name: pending_attempt_disposition
-- The entry's status detail and delay as they are now; its name and action as set.
SELECT ad.attempt_id, ad.name, ad.action, ad.agent, ad.callback_at, d.status_detail, d.delay_s,
       a.number
FROM attempt_dispositions ad
JOIN dispositions d ON d.id = ad.disposition_id
JOIN attempts a ON a.id = ad.attempt_id
WHERE ad.attempt_id = $1 AND ad.applied_at IS NULL;

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

-- name: mark_disposition_applied
UPDATE attempt_dispositions SET applied_at = $2 WHERE attempt_id = $1;
