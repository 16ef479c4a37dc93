-- The attempt.result webhook carries what our dialplan reported for the call
-- (migration 0006): AMD's verdict (amd_status) and the keys pressed in the IVR
-- (ivr_digits). Both are written by the UPDATE that ends the attempt, the one
-- this trigger fires on.
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
                'amd_status', NEW.amd_status, 'ivr_digits', NEW.ivr_digits)));
    RETURN NULL;
END
$$;
