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

-- name: end_call_attempts
-- The results of several calls at once (record_calls), in one statement: each attempt
-- ended once (as record_attempt_result, with what the dialplan reported, as
-- record_dialplan_report and record_agent_report: the attempt.result webhook reads
-- them from the row), then each one's contact locked (FOR UPDATE: the latest version
-- of its row). A row only for the attempts ended now; contact columns NULL for a
-- contact that is gone.
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::integer[],
                         $6::text[], $7::timestamptz[], $8::timestamptz[], $9::integer[],
                         $10::text[], $11::text[], $12::text[], $13::text[],
                         $14::timestamptz[], $15::integer[], $16::boolean[], $17::text[])
        AS r(id, outcome, originate_response, originate_reason, hangup_cause,
             hangup_cause_text, ended_at, answered_at, sip_code, result_source, amd_status,
             ivr_digits, agent, agent_connected_at, agent_wait_ms, abandoned, abandon_reason)
), ended AS (
    UPDATE attempts a
    SET state = 'ended', ended_at = greatest(r.ended_at, a.sent_at), outcome = r.outcome,
        originate_response = r.originate_response, originate_reason = r.originate_reason,
        hangup_cause = r.hangup_cause, hangup_cause_text = r.hangup_cause_text,
        sent_at = coalesce(a.sent_at, r.ended_at),
        answered_at = coalesce(a.answered_at, r.answered_at), sip_code = r.sip_code,
        result_source = r.result_source,
        amd_status = coalesce(r.amd_status, a.amd_status),
        ivr_digits = coalesce(r.ivr_digits, a.ivr_digits),
        agent = coalesce(r.agent, a.agent),
        agent_connected_at = coalesce(r.agent_connected_at, a.agent_connected_at),
        agent_wait_ms = coalesce(r.agent_wait_ms, a.agent_wait_ms),
        abandoned = coalesce(r.abandoned, a.abandoned),
        abandon_reason = coalesce(r.abandon_reason, a.abandon_reason)
    FROM r
    -- The ids a second time, as an index condition: the join alone lets the planner
    -- scan the whole table when its statistics are young (a new campaign).
    WHERE a.id = r.id AND a.id = ANY ($1::uuid[]) AND a.state <> 'ended'
    RETURNING a.id, a.campaign_id, a.contact_id
)
SELECT e.id::text AS ended_attempt_id, e.campaign_id AS ended_campaign_id,
       e.contact_id AS ended_contact_id, ca.flow_id IS NOT NULL AS in_flow, c.*
FROM ended e
JOIN campaigns ca ON ca.id = e.campaign_id
LEFT JOIN LATERAL (
    SELECT * FROM contacts WHERE contacts.id = e.contact_id FOR UPDATE
) c ON true
ORDER BY e.contact_id;

-- name: contacts_attempts
-- Every attempt of these (locked) contacts, in a statement of its own: its snapshot
-- has what was committed while their locks were awaited. The ended ones are the
-- strategy's history; an open one decides instead; a disposition set while the call
-- was up decides instead of the strategy.
SELECT a.contact_id, a.id::text AS id, a.step, a.channel, a.phone_slot, a.number, a.outcome,
       a.created_at, a.state,
       EXISTS (SELECT 1 FROM attempt_dispositions ad
               WHERE ad.attempt_id = a.id AND ad.applied_at IS NULL) AS disposed
FROM attempts a
WHERE a.contact_id = ANY ($1::bigint[])
ORDER BY a.contact_id, a.created_at, a.id;

-- name: close_contacts
-- close_contact for several contacts at once.
UPDATE contacts c
SET state = d.state, status = d.status, status_detail = d.status_detail,
    next_attempt_at = NULL, next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, closed_at = now(), updated_at = now()
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
    AS d(id, state, status, status_detail)
-- The ids a second time, as an index condition (end_call_attempts).
WHERE c.id = d.id AND c.id = ANY ($1::bigint[]) AND c.closed_at IS NULL;

-- name: plan_contacts
-- plan_contact for several contacts at once.
UPDATE contacts c
SET next_attempt_at = d.at, next_step = d.step, next_channel = d.channel,
    next_phone_slot = d.phone_slot, updated_at = now()
FROM unnest($1::bigint[], $2::timestamptz[], $3::integer[], $4::text[], $5::integer[])
    AS d(id, at, step, channel, phone_slot)
WHERE c.id = d.id AND c.id = ANY ($1::bigint[]) AND c.closed_at IS NULL;
