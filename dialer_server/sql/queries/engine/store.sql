-- The engine's shared operations on campaigns, contacts, attempts and strategies
-- (engine/store.py): what the claim, the results, reconciliation, the API and the CLI
-- all need.

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
-- Written before the Originate, with the moment it goes out ($2): while an
-- attempt is 'created' its call has not left, so reconciliation may put it back.
UPDATE attempts SET state = 'sent', sent_at = coalesce(sent_at, $2::timestamptz, now())
WHERE id = $1 AND state = 'created'
RETURNING id;

-- name: mark_attempt_sent_if_running
-- The same, for a call that waited (for a connection) before its mark: like a
-- call that waited for the rate limit, it goes out only if its campaign still runs.
UPDATE attempts a SET state = 'sent', sent_at = coalesce(a.sent_at, $2::timestamptz, now())
WHERE a.id = $1 AND a.state = 'created'
  AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = a.campaign_id AND c.state = 'running')
RETURNING a.id;

-- name: mark_attempt_answered
UPDATE attempts SET state = 'answered',
                    answered_at = coalesce(answered_at, $2::timestamptz, now())
WHERE id = $1 AND state IN ('created', 'sent');

-- name: mark_attempts_sent
-- mark_attempt_sent and mark_attempt_sent_if_running of the calls going out together,
-- in one statement: $3 says for each whether it waited (then only if its campaign runs).
UPDATE attempts a SET state = 'sent', sent_at = coalesce(a.sent_at, $2::timestamptz, now())
FROM unnest($1::uuid[], $3::boolean[]) AS m(id, if_running)
-- The ids a second time, as an index condition (engine/results.sql, end_call_attempts).
WHERE a.id = m.id AND a.id = ANY ($1::uuid[]) AND a.state = 'created'
  AND (NOT m.if_running
       OR EXISTS (SELECT 1 FROM campaigns c WHERE c.id = a.campaign_id AND c.state = 'running'))
RETURNING a.id::text AS id;

-- name: mark_attempts_answered
-- mark_attempt_answered of several attempts, each with its time.
UPDATE attempts a SET state = 'answered', answered_at = coalesce(a.answered_at, m.at, now())
FROM unnest($1::uuid[], $2::timestamptz[]) AS m(id, at)
WHERE a.id = m.id AND a.id = ANY ($1::uuid[]) AND a.state IN ('created', 'sent');

-- name: record_attempt_result
-- An attempt ends once: a late or repeated result for an ended attempt changes nothing.
-- A call never ends before it was sent: a PBX clock behind ours cannot make it so.
UPDATE attempts
SET state = 'ended', ended_at = greatest($7, sent_at), outcome = $2, originate_response = $3,
    originate_reason = $4, hangup_cause = $5, hangup_cause_text = $6,
    sent_at = coalesce(sent_at, $7), answered_at = coalesce(answered_at, $8),
    sip_code = $9, result_source = $10
WHERE id = $1 AND state <> 'ended'
RETURNING id;

-- name: get_attempt
SELECT id, campaign_id, contact_id, channel, step, phone_slot, number, state, created_at, sent_at,
       answered_at, ended_at, originate_response, originate_reason, hangup_cause,
       hangup_cause_text, outcome, sip_code, result_source
FROM attempts WHERE id = $1;

-- name: attempt_states
-- The state of each of these attempts that exists (reconciliation's clean-up of
-- the PBX's records).
SELECT id::text, state FROM attempts WHERE id = ANY ($1::uuid[]);

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

-- name: strategy_by_id
SELECT id, name, version, definition FROM strategies WHERE id = $1;

-- name: latest_strategy
SELECT id, name, version, definition FROM strategies
WHERE name = $1 ORDER BY version DESC LIMIT 1;

-- name: create_campaign
INSERT INTO campaigns (name, strategy_id, trunk, caller_id, max_concurrent_calls,
                       max_calls_per_second, ring_timeout_s, default_region, timezone,
                       calling_window, mode, amd, ivr_playback, machine_message,
                       webhook_attempts, queue, dial_ratio, abandon_cap, abandon_target,
                       max_dial_ratio, abandon_message, agent_wait_s, script, param_names,
                       preview_dial, preview_timeout_s, preview_skip_delay_s, pbxs)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, $26, $27, $28)
RETURNING id;

-- name: set_campaign_state
-- A change made over the API or the CLI: the dialer's own reason for the old state goes.
UPDATE campaigns SET state = $2, state_reason = NULL, updated_at = now() WHERE id = $1
RETURNING state;

-- name: get_campaign
SELECT * FROM campaigns WHERE id = $1;

-- name: running_campaigns
SELECT id, name, strategy_id, trunk, caller_id, max_concurrent_calls, max_calls_per_second,
       ring_timeout_s, calling_window, timezone, mode, amd, ivr_playback, machine_message,
       queue, dial_ratio, abandon_cap, abandon_target, max_dial_ratio, abandon_message,
       agent_wait_s, preview_dial, pbxs, record_calls, recording_announcement
FROM campaigns WHERE state = 'running' AND strategy_id IS NOT NULL ORDER BY id;

-- name: lock_campaign_to_complete
-- Completion first waits for every transaction holding the campaign open
-- (hold_campaign_open, or a contact INSERT's foreign-key lock), so the check
-- that follows, a new statement with a new snapshot, sees what they committed.
SELECT id FROM campaigns WHERE id = $1 AND state = 'running' FOR UPDATE;

-- name: complete_campaign_if_done
-- A running campaign is done when every contact is closed and no attempt is open.
-- Run after lock_campaign_to_complete, in its transaction.
UPDATE campaigns c SET state = 'completed', updated_at = now()
WHERE c.id = $1 AND c.state = 'running'
  AND NOT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = c.id AND closed_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM attempts WHERE campaign_id = c.id AND state <> 'ended')
RETURNING id;

-- name: hold_campaign_open
-- Taken by whatever reopens a contact, before it does: until it commits the
-- campaign cannot complete with that contact still open. KEY SHARE does not
-- conflict with the scheduler's FOR NO KEY UPDATE line-count lock.
SELECT state FROM campaigns WHERE id = $1 FOR KEY SHARE;

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
       a.sent_at, a.answered_at, a.ended_at, a.hangup_cause, a.hangup_cause_text, a.sip_code,
       a.result_source, a.detail, a.amd_status, a.ivr_digits, a.agent, a.agent_connected_at,
       a.agent_wait_ms, a.abandoned, ad.name AS disposition
FROM attempts a LEFT JOIN attempt_dispositions ad ON ad.attempt_id = a.id
WHERE a.contact_id = $1 ORDER BY a.created_at, a.id;

-- name: add_do_not_call
INSERT INTO dnc_numbers (campaign_id, number, reason) VALUES ($1, $2, $3)
ON CONFLICT (number, coalesce(campaign_id, 0)) DO NOTHING;

-- name: contact_history
-- Since the contact's current strategy run started (a bulk recycle or move starts a
-- fresh one: run_started_at), the caps count only those.
SELECT id, step, channel, phone_slot, number, outcome, created_at
FROM attempts
WHERE contact_id = $1 AND state = 'ended'
  AND created_at >= coalesce((SELECT run_started_at FROM contacts WHERE id = $1), '-infinity')
ORDER BY created_at, id;

-- name: contact_has_open_attempt
SELECT EXISTS (SELECT 1 FROM attempts WHERE contact_id = $1 AND state <> 'ended');

-- name: lock_contact
SELECT * FROM contacts WHERE id = $1 FOR UPDATE;

-- name: adopt_orphaned_attempts
-- Takes over the open attempts of daemons that are gone: a daemon is alive
-- exactly while it holds the advisory lock (1684, its id). Only those this
-- daemon can ask about: on one of its PBXs ($2), or from before the pool (no
-- PBX), or on a PBX no live daemon has (settled without it, after the margin).
WITH live AS (
    SELECT i.id, i.pbxs FROM dialer_instances i
    WHERE EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = 1684::oid AND l.objid = i.id::oid AND l.objsubid = 2)
)
UPDATE attempts a SET instance_id = $1
WHERE a.state <> 'ended'
  AND a.instance_id IS DISTINCT FROM $1
  AND NOT EXISTS (SELECT 1 FROM live WHERE live.id = a.instance_id)
  AND (a.pbx IS NULL OR a.pbx = ANY ($2::text[])
       OR NOT EXISTS (SELECT 1 FROM live WHERE a.pbx = ANY (live.pbxs)))
RETURNING a.id, a.campaign_id, a.contact_id, a.channel, a.state, a.created_at, a.pbx;

-- name: open_attempts_of_instance
SELECT id, campaign_id, contact_id, channel, state, created_at, pbx
FROM attempts WHERE instance_id = $1 AND state <> 'ended';

-- name: delete_unsent_attempt
-- An attempt whose Originate provably never left: still 'created' (every call is
-- marked sent before its Originate), or 'sent' when the caller knows the
-- Originate was never written ($2). It did not happen.
DELETE FROM attempts
WHERE id = $1 AND (state = 'created' OR (state = 'sent' AND $2::boolean))
RETURNING contact_id;

-- name: attempt_connected
-- An agent took the call (the dialplan's DialerAgent): noted on the attempt at
-- once (the result notes it again), and the attempt.connected event written.
-- Whether the agent is a desk user (a user with this endpoint) comes back.
WITH noted AS (
    UPDATE attempts SET agent = $2, agent_connected_at = $3
    WHERE id = $1 AND state <> 'ended'
    RETURNING id
)
SELECT webhook_attempt_connected(id), EXISTS (SELECT 1 FROM users WHERE agent = $2 AND active)
       AS desk_user
FROM noted;

-- name: campaign_is_running
SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1 AND state = 'running');
