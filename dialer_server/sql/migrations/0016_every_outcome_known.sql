-- Every outcome known (issue 15): results that outlive the daemon, declined
-- calls, refused trunks.

-- The far end's last SIP status: Q.850 cause 21 is both a person's 603 Decline
-- (outcome rejected) and the carrier refusing our trunk, 401/403/407 (outcome
-- trunk_error, like 402); the SIP status tells them apart.
ALTER TABLE attempts ADD COLUMN sip_code smallint CHECK (sip_code BETWEEN 100 AND 699);
-- How a call's result was learned: 'live' (its own AMI events), 'pbx' (the
-- record our hangup handler kept in AstDB, read by reconciliation when no
-- daemon saw the end), 'lost' (neither: the PBX lost the call).
ALTER TABLE attempts ADD COLUMN result_source text
    CHECK (result_source IN ('live', 'pbx', 'lost'));

ALTER TABLE attempts DROP CONSTRAINT attempts_outcome_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN (
    'answered', 'busy', 'no_answer', 'congestion', 'invalid_number', 'failed', 'machine',
    'abandoned', 'dangling', 'sent', 'rejected', 'trunk_error'));

-- Why the campaign is in its state when the dialer put it there (paused after
-- trunk errors in a row); cleared by any change over the API or the CLI.
ALTER TABLE campaigns ADD COLUMN state_reason text;

-- campaign.trunk_errors: the dialer paused a campaign whose calls its carrier refused.
ALTER TABLE webhook_outbox DROP CONSTRAINT webhook_outbox_event_type_check;
ALTER TABLE webhook_outbox ADD CONSTRAINT webhook_outbox_event_type_check CHECK (event_type IN (
    'contact.final_state', 'attempt.result', 'campaign.state_changed', 'attempt.disposition',
    'attempt.connected',
    'campaign.trunk_errors'));

-- The payloads carry the new fields: sip_code and result_source on attempts,
-- the reason of a campaign's state.
CREATE OR REPLACE FUNCTION webhook_contact_final_state() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_campaign_name text;
    v_attempts      bigint;
    v_last          jsonb;
BEGIN
    IF NOT webhooks_enabled() THEN
        RETURN NULL;
    END IF;
    SELECT name INTO v_campaign_name FROM campaigns WHERE id = NEW.campaign_id;
    SELECT count(*) INTO v_attempts FROM attempts WHERE contact_id = NEW.id;
    SELECT jsonb_build_object(
               'id', a.id, 'channel', a.channel, 'phone_slot', a.phone_slot,
               'number', a.number, 'outcome', a.outcome, 'ended_at', webhook_time(a.ended_at),
               'hangup_cause', a.hangup_cause, 'sip_code', a.sip_code,
               'result_source', a.result_source, 'amd_status', a.amd_status,
               'ivr_digits', a.ivr_digits)
    INTO v_last
    FROM attempts a WHERE a.contact_id = NEW.id AND a.state = 'ended'
    ORDER BY a.ended_at DESC, a.created_at DESC LIMIT 1;
    PERFORM webhook_enqueue(
        'contact.final_state', NEW.campaign_id, 'contact:' || NEW.id,
        jsonb_build_object(
            'campaign', jsonb_build_object('id', NEW.campaign_id, 'name', v_campaign_name),
            'contact', jsonb_build_object(
                'id', NEW.id, 'external_id', NEW.external_id, 'state', NEW.state,
                'previous_state', OLD.state, 'status', NEW.status,
                'status_detail', NEW.status_detail, 'closed_at', webhook_time(NEW.closed_at),
                'attempt_count', v_attempts, 'last_attempt', v_last)));
    RETURN NULL;
END
$$;

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
                'hangup_cause_text', NEW.hangup_cause_text, 'sip_code', NEW.sip_code,
                'result_source', NEW.result_source,
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

CREATE OR REPLACE FUNCTION webhook_campaign_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT webhooks_enabled() THEN
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(
        'campaign.state_changed', NEW.id, 'campaign:' || NEW.id,
        jsonb_build_object('campaign', jsonb_build_object(
            'id', NEW.id, 'name', NEW.name, 'state', NEW.state,
            'previous_state', OLD.state, 'reason', NEW.state_reason)));
    RETURN NULL;
END
$$;
