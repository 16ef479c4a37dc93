-- Events only while someone may read them (issue 12). The event log of /api/v1/events
-- took a row (and a NOTIFY, and its sequencing) for every event of every call, read or
-- not. It now records while a stream client is connected and for the retention time
-- after (a client that left may resume that long with Last-Event-ID): each daemon's
-- broker pushes events_wanted_until forward while it has clients (events.py).

ALTER TABLE webhook_settings ADD COLUMN events_wanted_until timestamptz;

-- Whether the event log records events: [events] enabled, and a stream client connected
-- within the retention time (a client that left may resume that long); with nobody to
-- read them, events cost nothing. PL/pgSQL, as webhooks_enabled(): every trigger of every
-- call asks, and PL/pgSQL keeps the plans of its statements where an SQL function that
-- cannot be inlined (its sub-selects) plans its body again at each call.
CREATE FUNCTION events_wanted() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT events_enabled AND events_wanted_until > now()
                     FROM webhook_settings), false);
END
$$;

-- Whether anything records events: the daemon's outbox, the event log, or a campaign's
-- own hook.
CREATE OR REPLACE FUNCTION webhooks_enabled() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT enabled FROM webhook_settings), false) OR events_wanted()
        OR EXISTS (SELECT 1 FROM campaign_webhooks);
END
$$;

CREATE OR REPLACE FUNCTION webhook_enqueue(
    p_type text, p_campaign_id bigint, p_ordering_key text, p_data jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_id      uuid := gen_random_uuid();
    v_payload jsonb := jsonb_build_object('id', v_id, 'type', p_type,
                                          'occurred_at', webhook_time(now())) || p_data;
    v_events  text[];
    v_own     boolean;
    v_send    boolean;
BEGIN
    SELECT events INTO v_events FROM campaign_webhooks WHERE campaign_id = p_campaign_id;
    v_own := FOUND;
    IF v_own THEN
        v_send := v_events IS NULL OR p_type = ANY (v_events);
    ELSE
        v_send := coalesce((SELECT enabled FROM webhook_settings), false);
    END IF;
    IF v_send THEN
        INSERT INTO webhook_outbox (id, event_type, campaign_id, ordering_key, payload,
                                    next_attempt_at, hook_campaign_id)
        VALUES (
            v_id, p_type, p_campaign_id, p_ordering_key, v_payload,
            -- Behind the events of the same key still waiting (in backoff, or leased).
            greatest(now(), (SELECT max(next_attempt_at) FROM webhook_outbox
                             WHERE ordering_key = p_ordering_key AND delivered_at IS NULL)),
            CASE WHEN v_own THEN p_campaign_id END);
        -- Delivered at commit (never for a rollback); the senders poll as well.
        PERFORM pg_notify('dialer_webhooks', '');
    END IF;
    IF events_wanted() THEN
        PERFORM event_publish(
            v_id, p_type, p_campaign_id,
            coalesce(p_data #>> '{agent,name}', p_data #>> '{attempt,agent}',
                     p_data #>> '{disposition,agent}'),
            v_payload);
    END IF;
END
$$;
