-- Recording results and moving contacts on (engine/results.py).

-- name: close_contact
-- A closed contact has no callback owner: nothing is dialled to anyone.
UPDATE contacts
SET state = $2, status = $3, status_detail = $4, next_attempt_at = NULL, next_step = NULL,
    next_channel = NULL, next_phone_slot = NULL, callback_agent = NULL, closed_at = now(),
    updated_at = now()
WHERE id = $1 AND closed_at IS NULL;

-- name: plan_contact
UPDATE contacts
SET next_attempt_at = $2, next_step = $3, next_channel = $4, next_phone_slot = $5,
    updated_at = now()
WHERE id = $1 AND closed_at IS NULL;

-- name: record_attempt_outcome
-- Like record_attempt_result, for results that are not a call report (SMS, dangling).
UPDATE attempts
SET state = 'ended', ended_at = $3::timestamptz, outcome = $2::text, detail = $4,
    sent_at = coalesce(sent_at, CASE WHEN $2::text = 'sent' THEN $3::timestamptz END)
WHERE id = $1 AND state <> 'ended'
RETURNING id;

-- name: insert_sms_inbound
-- Nothing (no id) when another daemon stored the same message already ($4).
INSERT INTO sms_inbound (number, body, received_at, message_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (message_id) DO NOTHING
RETURNING id;

-- name: match_sms_reply
-- The contact a reply belongs to: the latest SMS to that number whose contact
-- still waits for an answer, or is still being sent. A far end can answer
-- within milliseconds, before the send is recorded, and the daemon that gets
-- the reply need not be the one sending: the database is what they share.
-- (A reply to an SMS still in flight closes the contact; the SMS's own result
-- then leaves it as it is.) Both rows are locked: when the send's result is
-- committed while this waits, PostgreSQL re-checks the condition on the new
-- versions of *both* (locking only the contact would re-check a new contact
-- against the old attempt, which matches neither branch).
SELECT c.id FROM attempts a JOIN contacts c ON c.id = a.contact_id
WHERE a.channel = 'sms' AND a.number = $1
  AND ((a.outcome = 'sent' AND c.state = 'sms_sent')
       OR (a.state <> 'ended' AND c.closed_at IS NULL))
ORDER BY a.created_at DESC LIMIT 1
FOR UPDATE OF a, c;

-- name: mark_sms_responded
UPDATE contacts SET state = 'sms_responded', closed_at = coalesce(closed_at, now()),
                    callback_agent = NULL, updated_at = now()
WHERE id = $1;

-- name: link_sms_inbound
UPDATE sms_inbound SET contact_id = $2 WHERE id = $1;
