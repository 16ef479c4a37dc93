-- Agent modes (progressive, power, predictive): answered calls go to an
-- Asterisk queue of agents ([dialer-agents]); a caller no agent takes within
-- the grace time, or who hangs up first, is an abandoned call.

-- The queue whose members take the campaign's calls (DIALER_QUEUE).
ALTER TABLE campaigns ADD COLUMN queue text NOT NULL DEFAULT 'dialer-agents'
    CHECK (queue ~ '^[A-Za-z0-9_.-]{1,80}$');
-- power: calls placed per free agent.
ALTER TABLE campaigns ADD COLUMN dial_ratio numeric(4, 2) NOT NULL DEFAULT 1.5
    CHECK (dial_ratio BETWEEN 1 AND 5);
-- predictive: the abandon rate never to exceed (of answered calls, rolling 24 h
-- and 30 days; on breach the ratio falls back to 1), the rate steered for, and
-- the highest ratio it may reach.
ALTER TABLE campaigns ADD COLUMN abandon_cap numeric(5, 4) NOT NULL DEFAULT 0.03
    CHECK (abandon_cap > 0 AND abandon_cap <= 0.5);
ALTER TABLE campaigns ADD COLUMN abandon_target numeric(5, 4) NOT NULL DEFAULT 0.02
    CHECK (abandon_target > 0);
ALTER TABLE campaigns ADD COLUMN max_dial_ratio numeric(4, 2) NOT NULL DEFAULT 3
    CHECK (max_dial_ratio BETWEEN 1 AND 5);
ALTER TABLE campaigns ADD CONSTRAINT campaigns_abandon_target_within_cap
    CHECK (abandon_target <= abandon_cap);
-- What an abandoned caller hears (DIALER_ABANDON_MESSAGE): a sound name, as
-- ivr_playback. NULL: the dialplan's own message.
ALTER TABLE campaigns ADD COLUMN abandon_message text
    CHECK (abandon_message ~ '^[A-Za-z0-9_./&-]{1,255}$');
-- How long an answered caller may wait for an agent (DIALER_AGENT_WAIT_S).
ALTER TABLE campaigns ADD COLUMN agent_wait_s numeric(4, 1) NOT NULL DEFAULT 2
    CHECK (agent_wait_s BETWEEN 1 AND 60);

-- What happened to an answered call of an agent mode (DialerAgent and
-- DialerAbandon UserEvents), written with the call's result: the queue member
-- who took it and when, or that it was abandoned; how long the caller waited.
ALTER TABLE attempts ADD COLUMN agent text;
ALTER TABLE attempts ADD COLUMN agent_connected_at timestamptz;
ALTER TABLE attempts ADD COLUMN agent_wait_ms integer CHECK (agent_wait_ms >= 0);
ALTER TABLE attempts ADD COLUMN abandoned boolean;
-- Why: TIMEOUT (no agent within the grace time), HANGUP (the caller left first)...
ALTER TABLE attempts ADD COLUMN abandon_reason text;

ALTER TABLE attempts DROP CONSTRAINT attempts_outcome_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN (
    'answered', 'busy', 'no_answer', 'congestion', 'invalid_number', 'failed', 'machine',
    'abandoned', 'dangling', 'sent'));

-- Pacing reads a campaign's answered and abandoned calls of the last 30 days
-- and its recent call results every few seconds.
CREATE INDEX attempts_campaign_ended_idx ON attempts (campaign_id, ended_at)
    WHERE channel = 'call' AND state = 'ended';

-- The attempt.result webhook carries what the agent context reported: the
-- agent who took the call and when, the caller's wait, whether it was
-- abandoned (written by the UPDATE that ends the attempt, as in 0007).
CREATE OR REPLACE FUNCTION webhook_attempt_result() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_campaign_name text;
    v_wanted        boolean;
    v_external_id   text;
BEGIN
    IF NOT webhooks_enabled() THEN
        RETURN NULL;
    END IF;
    SELECT name, webhook_attempts INTO v_campaign_name, v_wanted
    FROM campaigns WHERE id = NEW.campaign_id;
    IF NOT coalesce(v_wanted, false) THEN
        RETURN NULL;
    END IF;
    SELECT external_id INTO v_external_id FROM contacts WHERE id = NEW.contact_id;
    PERFORM webhook_enqueue(
        'attempt.result', NEW.campaign_id, 'contact:' || NEW.contact_id,
        jsonb_build_object(
            'campaign', jsonb_build_object('id', NEW.campaign_id, 'name', v_campaign_name),
            'contact', jsonb_build_object('id', NEW.contact_id, 'external_id', v_external_id),
            'attempt', jsonb_build_object(
                'id', NEW.id, 'channel', NEW.channel, 'phone_slot', NEW.phone_slot,
                'number', NEW.number, 'step', NEW.step, 'outcome', NEW.outcome,
                'detail', NEW.detail, 'hangup_cause', NEW.hangup_cause,
                'hangup_cause_text', NEW.hangup_cause_text,
                'created_at', webhook_time(NEW.created_at),
                'sent_at', webhook_time(NEW.sent_at),
                'answered_at', webhook_time(NEW.answered_at),
                'ended_at', webhook_time(NEW.ended_at),
                'amd_status', NEW.amd_status, 'ivr_digits', NEW.ivr_digits,
                'agent', NEW.agent,
                'agent_connected_at', webhook_time(NEW.agent_connected_at),
                'agent_wait_ms', NEW.agent_wait_ms, 'abandoned', NEW.abandoned)));
    RETURN NULL;
END
$$;
