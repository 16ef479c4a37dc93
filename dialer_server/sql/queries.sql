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

-- name: insert_contact
-- A new contact is due at once: its first action is decided when it is claimed.
INSERT INTO contacts (campaign_id, external_id, phone1, phone2, phone3, phone4, phone5,
                      param1, param2, param3, param4, param5, param6, param7, param8,
                      param9, param10, param11, param12, timezone, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, now())
RETURNING id;

-- name: get_contact
SELECT * FROM contacts WHERE id = $1;

-- name: contact_attempts
SELECT a.id, a.step, a.channel, a.phone_slot, a.number, a.state, a.outcome, a.created_at,
       a.sent_at, a.answered_at, a.ended_at, a.hangup_cause, a.hangup_cause_text, a.detail,
       a.amd_status, a.ivr_digits, a.agent, a.agent_connected_at, a.agent_wait_ms, a.abandoned,
       ad.name AS disposition
FROM attempts a LEFT JOIN attempt_dispositions ad ON ad.attempt_id = a.id
WHERE a.contact_id = $1 ORDER BY a.created_at, a.id;

-- name: insert_strategy_version
-- Stores a strategy version once; returns the stored definition either way so
-- the caller can tell a re-load of the same file from a changed one.
WITH ins AS (
    INSERT INTO strategies (name, version, definition) VALUES ($1, $2, $3)
    ON CONFLICT (name, version) DO NOTHING
    RETURNING id, definition
)
SELECT id, definition FROM ins
UNION ALL
SELECT id, definition FROM strategies WHERE name = $1 AND version = $2
LIMIT 1;

-- name: latest_strategy
SELECT id, name, version, definition FROM strategies
WHERE name = $1 ORDER BY version DESC LIMIT 1;

-- name: strategy_by_id
SELECT id, name, version, definition FROM strategies WHERE id = $1;

-- name: create_campaign
INSERT INTO campaigns (name, strategy_id, trunk, caller_id, max_concurrent_calls,
                       max_calls_per_second, ring_timeout_s, default_region, timezone,
                       calling_window, mode, amd, ivr_playback, machine_message,
                       webhook_attempts, queue, dial_ratio, abandon_cap, abandon_target,
                       max_dial_ratio, abandon_message, agent_wait_s)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22)
RETURNING id;

-- name: set_campaign_state
UPDATE campaigns SET state = $2, updated_at = now() WHERE id = $1 RETURNING state;

-- name: get_campaign
SELECT * FROM campaigns WHERE id = $1;

-- name: running_campaigns
SELECT id, name, strategy_id, trunk, caller_id, max_concurrent_calls, max_calls_per_second,
       ring_timeout_s, calling_window, timezone, mode, amd, ivr_playback, machine_message,
       queue, dial_ratio, abandon_cap, abandon_target, max_dial_ratio, abandon_message,
       agent_wait_s
FROM campaigns WHERE state = 'running' AND strategy_id IS NOT NULL ORDER BY id;

-- name: lock_campaign_to_complete
-- Completion first waits for every transaction holding the campaign open
-- (hold_campaign_open, or a contact INSERT's foreign-key lock), so the check
-- that follows, a new statement with a new snapshot, sees what they committed.
SELECT id FROM campaigns WHERE id = $1 AND state = 'running' FOR UPDATE;

-- name: hold_campaign_open
-- Taken by whatever reopens a contact, before it does: until it commits the
-- campaign cannot complete with that contact still open. KEY SHARE does not
-- conflict with the scheduler's FOR NO KEY UPDATE line-count lock.
SELECT state FROM campaigns WHERE id = $1 FOR KEY SHARE;

-- name: complete_campaign_if_done
-- A running campaign is done when every contact is closed and no attempt is open.
-- Run after lock_campaign_to_complete, in its transaction.
UPDATE campaigns c SET state = 'completed', updated_at = now()
WHERE c.id = $1 AND c.state = 'running'
  AND NOT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = c.id AND closed_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM attempts WHERE campaign_id = c.id AND state <> 'ended')
RETURNING id;

-- name: claim_due_contacts
-- The one way work is leased: due contacts, oldest first, skipping rows another
-- daemon holds. Unplanning them (next_attempt_at NULL) in the same statement
-- means no other daemon can claim them again until their attempt has a result.
-- A personal callback waits for its agent ($4: the agents free now): filtered
-- before the LIMIT, so a callback whose agent stays busy never holds up others.
WITH due AS (
    SELECT id, next_attempt_at FROM contacts
    WHERE campaign_id = $1 AND next_attempt_at IS NOT NULL AND next_attempt_at <= $3
      AND (callback_agent IS NULL OR callback_agent = ANY ($4::text[]))
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE contacts c
SET next_attempt_at = NULL, updated_at = now()
FROM due WHERE c.id = due.id
RETURNING c.*, due.next_attempt_at AS due_at;

-- name: unclaim_contact
-- A claimed contact put back as it was (its agent already got a callback this claim).
UPDATE contacts SET next_attempt_at = $2, updated_at = now()
WHERE id = $1 AND closed_at IS NULL;

-- name: plan_contact
UPDATE contacts
SET next_attempt_at = $2, next_step = $3, next_channel = $4, next_phone_slot = $5,
    updated_at = now()
WHERE id = $1 AND closed_at IS NULL;

-- name: mark_contact_dialling
UPDATE contacts
SET state = 'sent_to_dialer', next_attempt_at = NULL, next_step = NULL, next_channel = NULL,
    next_phone_slot = NULL, updated_at = now()
WHERE id = $1;

-- name: close_contact
-- A closed contact has no callback owner: nothing is dialled to anyone.
UPDATE contacts
SET state = $2, status = $3, status_detail = $4, next_attempt_at = NULL, next_step = NULL,
    next_channel = NULL, next_phone_slot = NULL, callback_agent = NULL, closed_at = now(),
    updated_at = now()
WHERE id = $1 AND closed_at IS NULL;

-- name: lock_contact
SELECT * FROM contacts WHERE id = $1 FOR UPDATE;

-- name: contact_history
SELECT id, step, channel, phone_slot, number, outcome, created_at
FROM attempts WHERE contact_id = $1 AND state = 'ended' ORDER BY created_at, id;

-- name: contact_has_open_attempt
SELECT EXISTS (SELECT 1 FROM attempts WHERE contact_id = $1 AND state <> 'ended');

-- name: is_do_not_call
SELECT EXISTS (
    SELECT 1 FROM dnc_numbers
    WHERE number = $1 AND (campaign_id IS NULL OR campaign_id = $2)
);

-- name: add_do_not_call
INSERT INTO dnc_numbers (campaign_id, number, reason) VALUES ($1, $2, $3)
ON CONFLICT (number, coalesce(campaign_id, 0)) DO NOTHING;

-- name: insert_engine_attempt
-- clock_timestamp(), not now(): a claim may wait for another daemon's lock,
-- and the attempt exists from when it is written, not from when we waited.
INSERT INTO attempts (campaign_id, contact_id, channel, phone_slot, number, step, instance_id,
                      created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())
RETURNING id;

-- name: record_attempt_outcome
-- Like record_attempt_result, for results that are not a call report (SMS, dangling).
UPDATE attempts
SET state = 'ended', ended_at = $3::timestamptz, outcome = $2::text, detail = $4,
    sent_at = coalesce(sent_at, CASE WHEN $2::text = 'sent' THEN $3::timestamptz END)
WHERE id = $1 AND state <> 'ended'
RETURNING id;

-- name: register_instance
INSERT INTO dialer_instances (hostname, pid) VALUES ($1, $2) RETURNING id;

-- name: adopt_orphaned_attempts
-- Takes over the open attempts of daemons that are gone: a daemon is alive
-- exactly while it holds the advisory lock (1684, its id).
UPDATE attempts a SET instance_id = $1
WHERE a.state <> 'ended'
  AND a.instance_id IS DISTINCT FROM $1
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = 1684::oid AND l.objid = a.instance_id::oid AND l.objsubid = 2)
RETURNING a.id, a.campaign_id, a.contact_id, a.channel, a.state, a.created_at;

-- name: open_attempts_of_instance
SELECT id, campaign_id, contact_id, channel, state, created_at
FROM attempts WHERE instance_id = $1 AND state <> 'ended';

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

-- name: insert_sms_inbound
-- Nothing (no id) when another daemon stored the same message already ($4).
INSERT INTO sms_inbound (number, body, received_at, message_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (message_id) DO NOTHING
RETURNING id;

-- name: link_sms_inbound
UPDATE sms_inbound SET contact_id = $2 WHERE id = $1;

-- name: delete_unsent_attempt
-- An attempt whose Originate provably never left (AMI was down): it did not happen.
DELETE FROM attempts WHERE id = $1 AND state = 'created' RETURNING contact_id;

-- name: lock_campaign_lines
-- NO KEY UPDATE: inserting attempts and contacts (imports) takes KEY SHARE on
-- the campaign, which must not wait for a claim.
-- Serialises claims of one campaign across daemons: max_concurrent_calls is
-- the campaign's, not a daemon's. The open calls are counted by a separate
-- statement (open_campaign_calls), run after this one got the lock: a count in
-- this statement would use a snapshot from before the wait, blind to the
-- attempts the previous lock holder just committed.
SELECT max_concurrent_calls FROM campaigns
WHERE id = $1 AND state = 'running'
FOR NO KEY UPDATE;

-- name: campaign_is_running
SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1 AND state = 'running');

-- name: open_campaign_calls
SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended' AND channel = 'call';

-- name: try_pacing_lock
-- A queue's agents are paced by one daemon at a time (pacing_locks.py): a
-- session advisory lock ($1 = 1685, the hash of the queue's name $2) on a
-- connection of its own, dropped by PostgreSQL when that session ends. Two
-- names with one hash are only paced by the same daemon.
SELECT pg_try_advisory_lock($1, hashtext($2::text));

-- name: release_pacing_lock
SELECT pg_advisory_unlock($1, hashtext($2::text));

-- name: agent_pacing_stats
-- A predictive campaign's counts (agent_pacing.PacingStats): calls answered by
-- a person (reached an agent, or abandoned) and abandoned over the last 24 h
-- and 30 days; and of its latest $2 call results, how many a person answered
-- (the answer rate), and the mean talk time of the latest $2 calls agents
-- took. Dangling calls say nothing about either.
SELECT
    count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')
                       AND ended_at > now() - interval '24 hours') AS day_answered,
    count(*) FILTER (WHERE outcome = 'abandoned'
                       AND ended_at > now() - interval '24 hours') AS day_abandoned,
    count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')) AS month_answered,
    count(*) FILTER (WHERE outcome = 'abandoned') AS month_abandoned,
    (SELECT count(*) FROM (
         SELECT 1 FROM attempts
         WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
           AND outcome <> 'dangling'
         ORDER BY ended_at DESC LIMIT $2) r) AS recent_calls,
    (SELECT count(*) FILTER (WHERE r.outcome IN ('answered', 'abandoned')) FROM (
         SELECT outcome FROM attempts
         WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
           AND outcome <> 'dangling'
         ORDER BY ended_at DESC LIMIT $2) r) AS recent_answered,
    (SELECT avg(extract(epoch FROM r.ended_at - r.agent_connected_at))::float8 FROM (
         SELECT ended_at, agent_connected_at FROM attempts
         WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
           AND agent_connected_at IS NOT NULL
         ORDER BY ended_at DESC LIMIT $2) r) AS mean_talk_s
FROM attempts
WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
  AND ended_at > now() - interval '30 days';
