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
SET state = 'ended', ended_at = greatest($3::timestamptz, sent_at), outcome = $2::text,
    detail = $4, result_source = $5::text,
    sent_at = coalesce(sent_at, CASE WHEN $2::text = 'sent' THEN $3::timestamptz END)
WHERE id = $1 AND state <> 'ended'
RETURNING id;

-- name: last_results_all_trunk_errors
-- Whether the campaign's last $2 call results were all trunk errors (by the
-- partial index on ended call attempts).
SELECT count(*) = $2 AND bool_and(outcome = 'trunk_error')
FROM (SELECT outcome FROM attempts
      WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
      ORDER BY ended_at DESC LIMIT $2) AS recent;

-- name: campaign_trunk
SELECT trunk FROM campaigns WHERE id = $1;

-- name: pause_for_trunk_errors
-- Only a running campaign: of many results at once, one pauses it.
UPDATE campaigns SET state = 'paused', state_reason = $2, updated_at = now()
WHERE id = $1 AND state = 'running'
RETURNING id;

-- name: trunk_errors_webhook
-- The campaign.trunk_errors event, in the transaction of the pause (the trigger
-- adds campaign.state_changed with the same reason).
SELECT webhook_enqueue(
    'campaign.trunk_errors', c.id, 'campaign:' || c.id,
    jsonb_build_object(
        'campaign', jsonb_build_object('id', c.id, 'name', c.name, 'state', c.state,
                                       'reason', c.state_reason),
        'trunk', $2::text, 'trunk_errors', $3::integer, 'sip_code', $4::integer,
        'reason', $5::text))
FROM campaigns c WHERE c.id = $1 AND webhooks_enabled();

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
