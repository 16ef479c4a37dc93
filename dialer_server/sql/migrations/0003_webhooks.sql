-- Webhooks to the CRM. Triggers write each event into an outbox in the same
-- transaction as the state change it reports, whoever makes the change (the
-- engine, the API, the CLI, psql): an event exists exactly when its change
-- committed. The daemons drain the outbox (dialer_server/webhooks.py).

-- Attempt results are sent only for the campaigns that ask for them.
ALTER TABLE campaigns ADD COLUMN webhook_attempts boolean NOT NULL DEFAULT false;

-- Whether the triggers record events at all. Each daemon writes it at start
-- from its [webhooks] settings: no URL configured, no events recorded. No row
-- means off.
CREATE TABLE webhook_settings (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    enabled    boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_outbox (
    -- The event id: the body's "id" and the Idempotency-Key header. Random,
    -- not a sequence: a recreated database must never reuse a key a CRM has seen.
    id              uuid PRIMARY KEY,
    -- Creation order: the events of one ordering_key go out one after the other.
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    event_type      text NOT NULL CHECK (event_type IN (
                        'contact.final_state', 'attempt.result', 'campaign.state_changed')),
    -- No foreign key: an event outlives a deleted campaign.
    campaign_id     bigint NOT NULL,
    -- 'contact:<id>' or 'campaign:<id>'.
    ordering_key    text NOT NULL,
    -- The request body, exactly as sent (payload::text).
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When the event is next due; while a daemon sends it, the end of its lease.
    -- Never earlier than that of an undelivered event before it in its ordering_key.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Deliveries tried (counted when leased).
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    delivered_at    timestamptz
);

-- The senders only ever look at undelivered events: keep those indexes small.
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at, seq)
    WHERE delivered_at IS NULL;
CREATE INDEX webhook_outbox_order_idx ON webhook_outbox (ordering_key, seq)
    WHERE delivered_at IS NULL;
CREATE INDEX webhook_outbox_delivered_idx ON webhook_outbox (delivered_at)
    WHERE delivered_at IS NOT NULL;

CREATE FUNCTION webhooks_enabled() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT enabled FROM webhook_settings), false)
$$;

-- Times in payloads: UTC, ISO 8601, whatever the session's TimeZone.
CREATE FUNCTION webhook_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION webhook_enqueue(
    p_type text, p_campaign_id bigint, p_ordering_key text, p_data jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := gen_random_uuid();
BEGIN
    INSERT INTO webhook_outbox (id, event_type, campaign_id, ordering_key, payload,
                                next_attempt_at)
    VALUES (
        v_id, p_type, p_campaign_id, p_ordering_key,
        jsonb_build_object('id', v_id, 'type', p_type, 'occurred_at', webhook_time(now()))
            || p_data,
        -- Behind the events of the same key still waiting (in backoff, or leased).
        greatest(now(), (SELECT max(next_attempt_at) FROM webhook_outbox
                         WHERE ordering_key = p_ordering_key AND delivered_at IS NULL)));
    -- Delivered at commit (never for a rollback); the senders poll as well.
    PERFORM pg_notify('dialer_webhooks', '');
END
$$;

CREATE FUNCTION webhook_contact_final_state() RETURNS trigger
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
               'hangup_cause', a.hangup_cause)
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

CREATE FUNCTION webhook_attempt_result() RETURNS trigger
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
                'ended_at', webhook_time(NEW.ended_at))));
    RETURN NULL;
END
$$;

CREATE FUNCTION webhook_campaign_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT webhooks_enabled() THEN
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(
        'campaign.state_changed', NEW.id, 'campaign:' || NEW.id,
        jsonb_build_object('campaign', jsonb_build_object(
            'id', NEW.id, 'name', NEW.name, 'state', NEW.state,
            'previous_state', OLD.state)));
    RETURN NULL;
END
$$;

-- A contact's final state: closed_at set, or the state of a closed contact
-- changing (an SMS reply turns sms_sent into sms_responded).
CREATE TRIGGER contacts_webhook AFTER UPDATE OF state, closed_at ON contacts
FOR EACH ROW
WHEN (NEW.closed_at IS NOT NULL
      AND (OLD.closed_at IS NULL OR OLD.state IS DISTINCT FROM NEW.state))
EXECUTE FUNCTION webhook_contact_final_state();

CREATE TRIGGER attempts_webhook AFTER UPDATE OF state ON attempts
FOR EACH ROW
WHEN (NEW.state = 'ended' AND OLD.state IS DISTINCT FROM 'ended')
EXECUTE FUNCTION webhook_attempt_result();

CREATE TRIGGER campaigns_webhook AFTER UPDATE OF state ON campaigns
FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION webhook_campaign_state();
