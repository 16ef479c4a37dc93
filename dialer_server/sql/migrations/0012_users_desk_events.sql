-- Users and roles, the audit log, the event log behind /api/v1/events (SSE), the
-- attempt.connected event, and the agent desk's campaign settings (preview mode,
-- the script, parameter names).

-- People and systems that use the API and the desk. An agent user is tied to
-- the PJSIP endpoint of their phone (its queue member name).
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    display_name  text CHECK (length(display_name) <= 200),
    role          text NOT NULL
                  CHECK (role IN ('admin', 'supervisor', 'agent', 'integration', 'read_only')),
    -- Argon2id (argon2-cffi's encoded form); NULL: the user cannot log in with a
    -- password (an integration user with API tokens only).
    password_hash text,
    agent         text UNIQUE CHECK (agent ~ '^[A-Za-z0-9_.-]{1,80}$'),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'agent') = (agent IS NOT NULL))
);

-- Bearer tokens of users: API tokens an admin creates, and the sessions of the
-- desk's log-in. Only a SHA-256 of each token is kept (tokens are 256-bit
-- random strings: a fast hash is enough, unlike passwords).
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('api', 'session')),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Every write through the API or the desk: who, when, what, before and after.
-- No foreign key to users: the log outlives a deleted user.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     bigint,
    username    text NOT NULL,
    role        text NOT NULL,
    via         text NOT NULL CHECK (via IN ('api', 'desk', 'cli')),
    action      text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    target_type text,
    target_id   text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, id);
CREATE INDEX audit_log_username_idx ON audit_log (username, id);

-- The event log of /api/v1/events: the webhook events (whatever the outbox
-- does) and live events the outbox never has (agent.state). seq is the
-- stream's id (Last-Event-ID): given once the row is visible, by one
-- sequencer at a time (an advisory lock), so seqs follow commit order and a
-- client resuming after seq N never misses an event that committed late.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq         bigint UNIQUE,
    -- The body's "id": for a webhook event the same as its Idempotency-Key.
    event_id    uuid NOT NULL,
    event_type  text NOT NULL,
    campaign_id bigint,
    -- The agent an event is about (attempt.connected, agent.state...).
    agent       text,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_unsequenced_idx ON events (id) WHERE seq IS NULL;
CREATE INDEX events_created_idx ON events (created_at);

-- Whether events are recorded for the stream, beside the outbox (each daemon
-- writes it at start from [events] enabled).
ALTER TABLE webhook_settings ADD COLUMN events_enabled boolean NOT NULL DEFAULT false;

ALTER TABLE webhook_outbox DROP CONSTRAINT webhook_outbox_event_type_check;
ALTER TABLE webhook_outbox ADD CONSTRAINT webhook_outbox_event_type_check CHECK (event_type IN (
    'contact.final_state', 'attempt.result', 'campaign.state_changed', 'attempt.disposition',
    'attempt.connected'));

-- The triggers ask this before building an event: anything recording?
CREATE OR REPLACE FUNCTION webhooks_enabled() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT enabled OR events_enabled FROM webhook_settings), false)
$$;

CREATE FUNCTION event_publish(
    p_id uuid, p_type text, p_campaign_id bigint, p_agent text, p_payload jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (event_id, event_type, campaign_id, agent, payload)
    VALUES (p_id, p_type, p_campaign_id, p_agent, p_payload);
    -- Delivered at commit: the daemons' streams sequence and send it.
    PERFORM pg_notify('dialer_events', '');
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
BEGIN
    IF coalesce((SELECT enabled FROM webhook_settings), false) THEN
        INSERT INTO webhook_outbox (id, event_type, campaign_id, ordering_key, payload,
                                    next_attempt_at)
        VALUES (
            v_id, p_type, p_campaign_id, p_ordering_key, v_payload,
            -- Behind the events of the same key still waiting (in backoff, or leased).
            greatest(now(), (SELECT max(next_attempt_at) FROM webhook_outbox
                             WHERE ordering_key = p_ordering_key AND delivered_at IS NULL)));
        -- Delivered at commit (never for a rollback); the senders poll as well.
        PERFORM pg_notify('dialer_webhooks', '');
    END IF;
    IF coalesce((SELECT events_enabled FROM webhook_settings), false) THEN
        PERFORM event_publish(
            v_id, p_type, p_campaign_id,
            coalesce(p_data #>> '{agent,name}', p_data #>> '{attempt,agent}',
                     p_data #>> '{disposition,agent}'),
            v_payload);
    END IF;
END
$$;

-- attempt.connected: an agent took an answered call (the dialplan's DialerAgent,
-- engine/answered_calls.py). Written by the daemon following the call, once.
CREATE FUNCTION webhook_attempt_connected(p_attempt_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a      attempts%ROWTYPE;
    v_data jsonb;
BEGIN
    IF NOT webhooks_enabled() THEN
        RETURN;
    END IF;
    SELECT * INTO a FROM attempts WHERE id = p_attempt_id;
    IF NOT FOUND OR a.agent IS NULL THEN
        RETURN;
    END IF;
    SELECT jsonb_build_object(
               'campaign', jsonb_build_object('id', c.id, 'name', c.name, 'mode', c.mode),
               'contact', jsonb_build_object('id', k.id, 'external_id', k.external_id),
               'attempt', jsonb_build_object(
                   'id', a.id, 'channel', a.channel, 'phone_slot', a.phone_slot,
                   'number', a.number, 'step', a.step,
                   'created_at', webhook_time(a.created_at),
                   'answered_at', webhook_time(a.answered_at),
                   'agent_connected_at', webhook_time(a.agent_connected_at),
                   'agent_wait_ms', a.agent_wait_ms),
               'agent', jsonb_build_object(
                   'name', a.agent,
                   'user', (SELECT username FROM users WHERE agent = a.agent)))
    INTO v_data
    FROM campaigns c JOIN contacts k ON k.id = a.contact_id
    WHERE c.id = a.campaign_id;
    PERFORM webhook_enqueue('attempt.connected', a.campaign_id, 'contact:' || a.contact_id,
                            v_data);
END
$$;

-- Preview mode: the desk shows an agent the next contact first; Call dials it
-- (agent-first or customer-first), Skip returns it. script: what the agent
-- reads, with {param} placeholders; param_names: the CRM's names of param1..12.
ALTER TABLE campaigns DROP CONSTRAINT campaigns_mode_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_mode_check
    CHECK (mode IN ('automated', 'ivr', 'progressive', 'power', 'predictive', 'preview'));
ALTER TABLE campaigns
    ADD COLUMN script               text CHECK (length(script) <= 20000),
    ADD COLUMN param_names          jsonb,
    ADD COLUMN preview_dial         text NOT NULL DEFAULT 'agent_first'
                                    CHECK (preview_dial IN ('agent_first', 'customer_first')),
    ADD COLUMN preview_timeout_s    integer CHECK (preview_timeout_s BETWEEN 5 AND 3600),
    ADD COLUMN preview_skip_delay_s integer NOT NULL DEFAULT 3600
                                    CHECK (preview_skip_delay_s BETWEEN 0 AND 2592000);

-- The agent a contact is shown to (preview): reserved while next_attempt_at is
-- NULL, to be dialled to that agent once due (Call, or the preview timeout).
ALTER TABLE contacts
    ADD COLUMN preview_agent      text CHECK (preview_agent ~ '^[A-Za-z0-9_.-]{1,80}$'),
    ADD COLUMN preview_offered_at timestamptz;
CREATE INDEX contacts_preview_idx ON contacts (preview_agent) WHERE preview_agent IS NOT NULL;
-- The desk lists an agent's personal callbacks due today.
CREATE INDEX contacts_callback_agent_idx ON contacts (callback_agent, next_attempt_at)
    WHERE callback_agent IS NOT NULL;
