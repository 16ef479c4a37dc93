-- Every query the dialer runs, by name. Loaded once by dialer_server.db.

-- name: upsert_campaign_by_name
INSERT INTO campaigns (name, trunk, caller_id, ring_timeout_s)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE
    SET trunk = EXCLUDED.trunk, caller_id = EXCLUDED.caller_id,
        ring_timeout_s = EXCLUDED.ring_timeout_s, updated_at = now()
RETURNING id;

-- name: upsert_contact_by_external_id
INSERT INTO contacts (campaign_id, external_id, phone1)
VALUES ($1, $2, $3)
ON CONFLICT (campaign_id, external_id) DO UPDATE
    SET phone1 = EXCLUDED.phone1, updated_at = now()
RETURNING id;

-- name: insert_attempt
INSERT INTO attempts (campaign_id, contact_id, channel, phone_slot, number)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: mark_attempt_sent
UPDATE attempts SET state = 'sent', sent_at = coalesce(sent_at, now())
WHERE id = $1 AND state = 'created';

-- name: mark_attempt_answered
UPDATE attempts SET state = 'answered', answered_at = coalesce(answered_at, now()),
                    sent_at = coalesce(sent_at, now())
WHERE id = $1 AND state IN ('created', 'sent');

-- name: record_attempt_result
-- An attempt ends once: a late or repeated result for an ended attempt changes nothing.
UPDATE attempts
SET state = 'ended', ended_at = $7, outcome = $2, originate_response = $3,
    originate_reason = $4, hangup_cause = $5, hangup_cause_text = $6,
    sent_at = coalesce(sent_at, $7), answered_at = coalesce(answered_at, $8)
WHERE id = $1 AND state <> 'ended'
RETURNING id;

-- name: get_attempt
SELECT id, campaign_id, contact_id, channel, phone_slot, number, state, created_at, sent_at,
       answered_at, ended_at, originate_response, originate_reason, hangup_cause,
       hangup_cause_text, outcome
FROM attempts WHERE id = $1;
