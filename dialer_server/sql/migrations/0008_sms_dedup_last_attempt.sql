-- Every daemon sees every AMI event, so each one used to store the same inbound
-- SMS. message_id identifies the SIP MESSAGE ([dialer-sms-in] passes its Call-ID
-- and CSeq): the first daemon to store it wins, the others insert nothing
-- (ON CONFLICT DO NOTHING) and leave the contact alone. NULL (a reply without
-- one) never conflicts.
ALTER TABLE sms_inbound ADD COLUMN message_id text;
ALTER TABLE sms_inbound ADD CONSTRAINT sms_inbound_message_id_key UNIQUE (message_id);

-- The contact.final_state webhook's last_attempt carries what our dialplan
-- reported for that attempt, as attempt.result does (migration 0007): AMD's
-- verdict (amd_status) and the keys pressed in the IVR (ivr_digits).
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
               'hangup_cause', a.hangup_cause, 'amd_status', a.amd_status,
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
