-- The current schema, equal to applying every migration in order (a test checks it).
-- Campaigns, their contacts, and every attempt to reach a contact.

-- A strategy is immutable once stored: a change is a new version, so the
-- attempts already made keep the meaning they were made under.
CREATE TABLE strategies (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    version    integer NOT NULL CHECK (version >= 1),
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

-- A flow is immutable once stored, like a strategy: a change is a new version, so
-- the contacts already on their way keep the meaning they started under.
CREATE TABLE flows (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    version    integer NOT NULL CHECK (version >= 1),
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE campaigns (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    state                text NOT NULL DEFAULT 'stopped'
                         CHECK (state IN ('stopped', 'running', 'paused', 'completed')),
    -- NULL means the daemon's dialing.trunk / dialing.caller_id.
    trunk                text,
    caller_id            text,
    max_concurrent_calls integer NOT NULL DEFAULT 10 CHECK (max_concurrent_calls > 0),
    max_calls_per_second numeric(8, 3) NOT NULL DEFAULT 5 CHECK (max_calls_per_second > 0),
    -- Several countries require at least 15 s of ringing before giving up.
    ring_timeout_s       integer NOT NULL DEFAULT 30 CHECK (ring_timeout_s >= 15),
    -- Region used to read numbers written without a country code.
    default_region       text NOT NULL DEFAULT 'US' CHECK (default_region ~ '^[A-Z]{2}$'),
    timezone             text NOT NULL DEFAULT 'UTC',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    strategy_id          bigint REFERENCES strategies (id),
    -- Allowed hours per weekday in the contact's local time, blackout dates and
    -- the zone for contacts whose zone is unknown (calling_window.py). NULL:
    -- every day 08:00-21:00, the hours most regulations allow.
    calling_window       jsonb,
    -- Send a webhook for each attempt result (contacts' final states are always sent).
    webhook_attempts     boolean NOT NULL DEFAULT false,
    -- What happens once a person answers (migration 0006): 'automated' goes to the
    -- dialing context ([dialer-answered]), 'ivr' to [dialer-ivr]; the agent modes
    -- are 'progressive', 'power' and 'predictive'.
    mode                 text NOT NULL DEFAULT 'automated'
                         CONSTRAINT campaigns_mode_check
                         CHECK (mode IN ('automated', 'ivr', 'progressive', 'power',
                                         'predictive', 'preview')),
    -- AMD() on every answered call ([dialer-amd]); a machine is the outcome 'machine'.
    amd                  boolean NOT NULL DEFAULT false,
    -- Asterisk sound names: the campaign's prompt or message (DIALER_PLAYBACK) and
    -- what to leave on answering machines (DIALER_MACHINE_MESSAGE). They go into
    -- dialplan arguments (no commas, spaces or line breaks) and are read under
    -- Asterisk's sounds folder: names, never paths (no "..", no leading "/"; see
    -- SOUND_PATTERN in campaigns/operations.py, migration 0013).
    ivr_playback         text CHECK (ivr_playback ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$'),
    machine_message      text CHECK (machine_message ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$'),
    -- Agent modes (migration 0009): the queue whose members take the calls
    -- (DIALER_QUEUE); power: calls per free agent; predictive: the abandon rate
    -- never to exceed (of answered calls, rolling 24 h and 30 days), the rate
    -- steered for, and the highest ratio; what an abandoned caller hears
    -- (NULL: the dialplan's own message); how long a caller may wait for an agent.
    queue                text NOT NULL DEFAULT 'dialer-agents'
                         CHECK (queue ~ '^[A-Za-z0-9_.-]{1,80}$'),
    dial_ratio           numeric(4, 2) NOT NULL DEFAULT 1.5 CHECK (dial_ratio BETWEEN 1 AND 5),
    abandon_cap          numeric(5, 4) NOT NULL DEFAULT 0.03
                         CHECK (abandon_cap > 0 AND abandon_cap <= 0.5),
    abandon_target       numeric(5, 4) NOT NULL DEFAULT 0.02 CHECK (abandon_target > 0),
    max_dial_ratio       numeric(4, 2) NOT NULL DEFAULT 3 CHECK (max_dial_ratio BETWEEN 1 AND 5),
    abandon_message      text CHECK (abandon_message ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$'),
    agent_wait_s         numeric(4, 1) NOT NULL DEFAULT 2 CHECK (agent_wait_s BETWEEN 1 AND 60),
    CONSTRAINT campaigns_abandon_target_within_cap CHECK (abandon_target <= abandon_cap),
    -- The agent desk (migration 0012): what the agent reads, with {param}
    -- placeholders; the CRM's names of param1..param12 ({"param1": "first_name"});
    -- preview mode: the agent's phone rings first (agent_first) or the
    -- customer's, an optional time after which a shown contact is dialled
    -- anyway, and how long a skipped contact waits before it is due again.
    script               text CHECK (length(script) <= 20000),
    param_names          jsonb,
    preview_dial         text NOT NULL DEFAULT 'agent_first'
                         CHECK (preview_dial IN ('agent_first', 'customer_first')),
    preview_timeout_s    integer CHECK (preview_timeout_s BETWEEN 5 AND 3600),
    preview_skip_delay_s integer NOT NULL DEFAULT 3600
                         CHECK (preview_skip_delay_s BETWEEN 0 AND 2592000),
    -- The PBXs the campaign may use, by name (migration 0014); NULL: every PBX of
    -- the dialling daemon.
    pbxs                 text[]
                         CHECK (cardinality(pbxs) BETWEEN 1 AND 64
                                AND array_to_string(pbxs, ',')
                                    ~ '^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64})*$'),
    -- Why the campaign is in its state, when the dialer put it there itself
    -- (migration 0016: paused after trunk errors in a row); NULL after any
    -- change made over the API or the CLI.
    state_reason         text,
    -- Task flows (migration 0017, engine/flow.py). NULL: no flow, the campaign is one
    -- call task (as before flows).
    flow_id              bigint REFERENCES flows (id),
    -- Recording (migration 0015, campaigns/recordings.py): answered calls are recorded
    -- by our dialplan (MixMonitor), named by attempt id, after an optional announcement
    -- (a sound name); files are deleted after recording_retention_days (NULL:
    -- [recording] retention_days).
    record_calls         boolean NOT NULL DEFAULT false,
    recording_announcement text CHECK (recording_announcement ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$'),
    recording_retention_days integer CHECK (recording_retention_days BETWEEN 1 AND 36500)
);

CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- The CRM's own id for this contact; re-imports update rather than duplicate.
    external_id     text,
    -- NULL only once erased (erased_at).
    phone1          varchar(28),
    phone2          varchar(28),
    phone3          varchar(28),
    phone4          varchar(28),
    phone5          varchar(28),
    param1          varchar(255),
    param2          varchar(255),
    param3          varchar(255),
    param4          varchar(255),
    param5          varchar(255),
    param6          varchar(255),
    param7          varchar(255),
    param8          varchar(255),
    param9          varchar(255),
    param10         varchar(255),
    param11         varchar(255),
    param12         varchar(255),
    timezone        text,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN (
                        'pending', 'sent_to_dialer', 'connected', 'not_connected',
                        'retries_completed', 'dnc_listed', 'sms_sent', 'sms_sent_closed',
                        'sms_responded', 'dangling', 'cancelled')),
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'success', 'declined', 'failed')),
    status_detail   text NOT NULL DEFAULT '$none' CHECK (length(status_detail) BETWEEN 1 AND 100),
    -- When the contact is next due; NULL while nothing is scheduled.
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- What the strategy decided to do at next_attempt_at. next_step NULL with a
    -- due time means the first action is still to be decided (a fresh contact).
    next_step       smallint CHECK (next_step >= 0),
    next_channel    text CHECK (next_channel IN ('call', 'sms')),
    next_phone_slot smallint CHECK (next_phone_slot BETWEEN 1 AND 5),
    closed_at       timestamptz,
    -- A personal callback's owner ($follow_up_personal, seed 001's $owner): the
    -- engine dials the contact only while this agent is free (migration 0010).
    callback_agent  text CHECK (callback_agent ~ '^[A-Za-z0-9_.-]{1,80}$'),
    -- Preview mode (migration 0012): the agent the contact is shown to; reserved
    -- while next_attempt_at is NULL, dialled to that agent once due (Call, or
    -- the campaign's preview timeout).
    preview_agent      text CHECK (preview_agent ~ '^[A-Za-z0-9_.-]{1,80}$'),
    preview_offered_at timestamptz,
    -- Where the contact is in its campaign's flow (migration 0017). task NULL: the
    -- flow's first task (a call task: imported contacts are dialled as ever), or the
    -- campaign has no flow. A task other than call is due at task_due_at (NULL while
    -- it runs, or when nothing is due): the call claim never sees it, its
    -- next_attempt_at stays NULL. task_key is the idempotency key of this pass through
    -- the task (every try of one pass carries it: the Message-ID of an email, the
    -- Idempotency-Key of a webhook); task_pass the pass number, task_passes the passes
    -- of every task so far ({"call": 2}), task_tries the executions of this pass
    -- (retries), task_entered_at when this pass began.
    task            text CHECK (task ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    task_due_at     timestamptz,
    task_key        uuid,
    task_pass       integer NOT NULL DEFAULT 1 CHECK (task_pass >= 1),
    task_passes     jsonb,
    task_tries      integer NOT NULL DEFAULT 0 CHECK (task_tries >= 0),
    task_entered_at timestamptz,
    -- Bulk recycle (migration 0015): a fresh strategy run counts only the attempts
    -- made since it started.
    run_started_at  timestamptz,
    -- Data rights (migration 0015): an erased contact keeps its row, for its attempts'
    -- statistics, but none of its personal fields.
    erased_at       timestamptz,
    UNIQUE (campaign_id, external_id),
    CONSTRAINT contacts_phone1_unless_erased CHECK (phone1 IS NOT NULL OR erased_at IS NOT NULL)
);

-- The scheduler only ever looks at due contacts: keep that index small.
CREATE INDEX contacts_due_idx ON contacts (campaign_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX contacts_campaign_state_idx ON contacts (campaign_id, state);
CREATE INDEX contacts_preview_idx ON contacts (preview_agent) WHERE preview_agent IS NOT NULL;
-- The desk lists an agent's personal callbacks due today.
CREATE INDEX contacts_callback_agent_idx ON contacts (callback_agent, next_attempt_at)
    WHERE callback_agent IS NOT NULL;
-- The task executor only ever looks at due tasks: keep that index small.
CREATE INDEX contacts_task_due_idx ON contacts (task_due_at) WHERE task_due_at IS NOT NULL;
-- Every phone of a contact (migration 0015): dedup on import, and finding a person by
-- number across campaigns.
CREATE INDEX contacts_phones_idx ON contacts
    USING gin ((ARRAY[phone1, phone2, phone3, phone4, phone5]::text[]));

-- Import reports (migration 0013, contacts/import_reports.py): every import (API, file,
-- CLI, drop folder) with its counts, and the problems of its rejected rows in row order
-- (the first 1,000,000: "problems" counts them all, "listed" those kept), served by
-- GET /api/v1/imports/{id}/report. A report goes when expires_at passes (deleted by the
-- next import: import.report_days) or with its campaign. The id is taken from the
-- sequence before the import runs, so that problems are spooled under it.
CREATE TABLE imports (
    id            bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    campaign_id   bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    source        text NOT NULL CHECK (source IN ('api', 'file', 'cli', 'drop_folder')),
    file_name     text,
    received      bigint NOT NULL,
    inserted      bigint NOT NULL,
    updated       bigint NOT NULL,
    rejected_rows bigint NOT NULL,
    problems      bigint NOT NULL,
    listed        bigint NOT NULL,
    stored        boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    -- Dedup (migration 0015): rows found to be duplicates (listed in the report among
    -- the problems, counted apart), and the options the import ran with.
    duplicates    bigint NOT NULL DEFAULT 0,
    options       jsonb
);
CREATE INDEX imports_expires_at ON imports (expires_at);
CREATE INDEX imports_campaign_id ON imports (campaign_id);

CREATE TABLE import_problems (
    import_id  bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    position   bigint NOT NULL,
    row_number bigint NOT NULL,
    field      text,
    reason     text NOT NULL,
    PRIMARY KEY (import_id, position)
);

-- One row per daemon start. A live daemon holds a session advisory lock on
-- its id: when the lock is free, the daemon is gone (crash, kill -9, lost
-- connection) and its calls in flight can be taken over at once.
CREATE TABLE dialer_instances (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    -- The PBXs the daemon dials through (migration 0014): an orphaned attempt is
    -- taken over by a live daemon that has its PBX, or, when none has, by any.
    pbxs       text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE attempts (
    -- Also the Originate ChannelId, hence Asterisk's Uniqueid for the call:
    -- every AMI event of the call carries it.
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id        bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id         bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel            text NOT NULL DEFAULT 'call' CHECK (channel IN ('call', 'sms')),
    phone_slot         smallint CHECK (phone_slot BETWEEN 1 AND 5),
    -- NULL only once its contact was erased.
    number             varchar(28),
    -- created: row written, Originate not sent (every call is marked sent just
    -- before its Originate, migration 0016: a 'created' call never left); sent:
    -- the Originate may have gone out; answered; ended: outcome recorded.
    state              text NOT NULL DEFAULT 'created'
                       CHECK (state IN ('created', 'sent', 'answered', 'ended')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    answered_at        timestamptz,
    ended_at           timestamptz,
    originate_response text,
    originate_reason   smallint,
    hangup_cause       smallint,
    hangup_cause_text  text,
    outcome            text CHECK (outcome IN (
                           'answered', 'busy', 'no_answer', 'congestion', 'invalid_number',
                           'failed', 'machine', 'abandoned', 'dangling', 'sent', 'rejected',
                           'trunk_error')),
    step               smallint,
    instance_id        integer REFERENCES dialer_instances (id),
    -- What the SMS provider answered, or why a result is what it is.
    detail             text,
    -- What our dialplan reported (migration 0006): AMD's verdict (MACHINE, HUMAN,
    -- NOTSURE) and the keys pressed in the IVR.
    amd_status         text,
    ivr_digits         text,
    -- Agent modes (migration 0009): the queue member who took the call and when,
    -- or that it was abandoned and why (TIMEOUT, HANGUP...); the caller's wait.
    agent              text,
    agent_connected_at timestamptz,
    agent_wait_ms      integer CHECK (agent_wait_ms >= 0),
    abandoned          boolean,
    abandon_reason     text,
    -- The PBX the call was placed on (migration 0014: [[pbx]] name): its channel
    -- limit counts it, and reconciliation asks that PBX about it, its channels and
    -- its records. NULL: an SMS, or a call from before the pool (reconciled against
    -- a daemon's first PBX).
    pbx                text,
    -- The far end's last SIP status (migration 0016): 603 (rejected) and 401,
    -- 402, 403, 407 (trunk_error) from Q.850 cause 21 alike.
    sip_code           smallint CHECK (sip_code BETWEEN 100 AND 699),
    -- How a call's result was learned: 'live' (its own AMI events), 'pbx' (the
    -- record our hangup handler kept in AstDB, read by reconciliation), 'lost'
    -- (neither: the PBX lost the call). NULL for SMS and open attempts.
    result_source      text CHECK (result_source IN ('live', 'pbx', 'lost')),
    -- The caller ID the call was placed with, from the campaign's pool (migration 0015).
    caller_id          text,
    -- The call's recording (migration 0015, campaigns/recordings.py). stored: found,
    -- with its path, duration and size; missing: the campaign recorded but the file
    -- never appeared where this dialer reads recordings; deleted: by retention or by
    -- an erasure.
    recording_status   text CHECK (recording_status IN ('stored', 'missing', 'deleted')),
    recording_path     text,
    recording_duration_s numeric(10, 3),
    recording_bytes    bigint,
    recording_deleted_at timestamptz,
    CHECK ((state = 'ended') = (outcome IS NOT NULL))
);

CREATE INDEX attempts_contact_idx ON attempts (contact_id, created_at);
-- Attempts whose result is still open: what reconciliation walks after a restart.
CREATE INDEX attempts_open_idx ON attempts (created_at) WHERE state <> 'ended';
-- A PBX's calls in progress, counted by every claim placing calls on it.
CREATE INDEX attempts_open_pbx_idx ON attempts (pbx) WHERE state <> 'ended';
CREATE INDEX attempts_sms_number_idx ON attempts (number) WHERE channel = 'sms';
-- Pacing reads a campaign's answered and abandoned calls of the last 30 days
-- and its recent call results every few seconds.
CREATE INDEX attempts_campaign_ended_idx ON attempts (campaign_id, ended_at)
    WHERE channel = 'call' AND state = 'ended';
-- Attempts across a campaign (migration 0015): listed and exported in (created_at, id)
-- order, a keyset that new attempts never reorder.
CREATE INDEX attempts_campaign_created_idx ON attempts (campaign_id, created_at, id);
-- Recordings that retention may delete.
CREATE INDEX attempts_recording_stored_idx ON attempts (ended_at)
    WHERE recording_status = 'stored';

-- Do-not-call numbers: campaign_id NULL is the global list.
CREATE TABLE dnc_numbers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id bigint REFERENCES campaigns (id) ON DELETE CASCADE,
    number      varchar(28) NOT NULL CHECK (length(number) > 0),
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dnc_numbers_scope_idx ON dnc_numbers (number, coalesce(campaign_id, 0));

-- Inbound SMS, kept whether or not a contact matched.
CREATE TABLE sms_inbound (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number      varchar(28) NOT NULL,
    body        text NOT NULL,
    received_at timestamptz NOT NULL,
    contact_id  bigint REFERENCES contacts (id) ON DELETE SET NULL,
    -- The SIP MESSAGE's Call-ID and CSeq: each daemon sees the same event, one
    -- stores it (migration 0008).
    message_id  text UNIQUE
);

-- Webhooks to the CRM: triggers write each event into the outbox in the same
-- transaction as the state change it reports (see migration 0003).

-- Whether the triggers record events at all. Each daemon writes it at start
-- from its [webhooks] settings: no URL configured, no events recorded. No row
-- means off.
CREATE TABLE webhook_settings (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    enabled    boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The same events recorded in the event log of /api/v1/events ([events] enabled).
    events_enabled boolean NOT NULL DEFAULT false,
    -- ... while a stream client may still read them: until the retention time after the
    -- last moment a client was connected (migration 0018, events.py). NULL: none yet.
    events_wanted_until timestamptz
);

CREATE TABLE webhook_outbox (
    -- The event id: the body's "id" and the Idempotency-Key header. Random,
    -- not a sequence: a recreated database must never reuse a key a CRM has seen.
    id              uuid PRIMARY KEY,
    -- Creation order: the events of one ordering_key go out one after the other.
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    event_type      text NOT NULL CONSTRAINT webhook_outbox_event_type_check CHECK (event_type IN (
                        'contact.final_state', 'attempt.result', 'campaign.state_changed',
                        'attempt.disposition', 'attempt.connected',
                        'campaign.trunk_errors')),
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
    delivered_at    timestamptz,
    -- Whose hook the event goes to (migration 0015): the campaign's own (its id), or
    -- the daemon's (NULL). Fixed when the event is written: an event meant for a
    -- campaign's own CRM never goes to another one.
    hook_campaign_id bigint
);

-- The senders only ever look at undelivered events: keep those indexes small.
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at, seq)
    WHERE delivered_at IS NULL;
CREATE INDEX webhook_outbox_order_idx ON webhook_outbox (ordering_key, seq)
    WHERE delivered_at IS NULL;
CREATE INDEX webhook_outbox_delivered_idx ON webhook_outbox (delivered_at)
    WHERE delivered_at IS NOT NULL;

-- Per-campaign webhooks (migration 0015): a campaign with a row here sends its events
-- to its own URL, signed with its own secret, and only the event types it lists (NULL:
-- every type); the others use the daemon's [webhooks] url. While
-- previous_secret_until is in the future, deliveries carry a second signature made
-- with previous_secret (a rotation).
CREATE TABLE campaign_webhooks (
    campaign_id           bigint PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    url                   text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret                text NOT NULL CHECK (length(secret) BETWEEN 16 AND 200),
    previous_secret       text CHECK (length(previous_secret) BETWEEN 16 AND 200),
    previous_secret_until timestamptz,
    events                text[] CHECK (cardinality(events) >= 1),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL))
);

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
-- own hook. Asked by every trigger of every call: the first call of a transaction keeps
-- its answer in a transaction-local setting, which the others read (migration 0019).
CREATE FUNCTION webhooks_enabled() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_known   text := current_setting('dialer.webhooks_enabled', true);
    v_enabled boolean;
BEGIN
    IF v_known = 'on' THEN
        RETURN true;
    ELSIF v_known = 'off' THEN
        RETURN false;
    END IF;
    v_enabled := coalesce((SELECT enabled FROM webhook_settings), false) OR events_wanted()
        OR EXISTS (SELECT 1 FROM campaign_webhooks);
    PERFORM set_config('dialer.webhooks_enabled', CASE WHEN v_enabled THEN 'on' ELSE 'off' END,
                       true);
    RETURN v_enabled;
END
$$;

-- Times in payloads: UTC, ISO 8601, whatever the session's TimeZone.
CREATE FUNCTION webhook_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
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

CREATE FUNCTION webhook_enqueue(
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
            'previous_state', OLD.state, 'reason', NEW.state_reason)));
    RETURN NULL;
END
$$;

-- A contact's final state: closed_at set, or the state or status of a closed
-- contact changing (an SMS reply turns sms_sent into sms_responded; a
-- disposition turns connected/success into connected/declined).
CREATE TRIGGER contacts_webhook AFTER UPDATE OF state, status, status_detail, closed_at
ON contacts
FOR EACH ROW
WHEN (NEW.closed_at IS NOT NULL
      AND (OLD.closed_at IS NULL OR OLD.state IS DISTINCT FROM NEW.state
           OR OLD.status IS DISTINCT FROM NEW.status
           OR OLD.status_detail IS DISTINCT FROM NEW.status_detail))
EXECUTE FUNCTION webhook_contact_final_state();

CREATE TRIGGER attempts_webhook AFTER UPDATE OF state ON attempts
FOR EACH ROW
WHEN (NEW.state = 'ended' AND OLD.state IS DISTINCT FROM 'ended')
EXECUTE FUNCTION webhook_attempt_result();

CREATE TRIGGER campaigns_webhook AFTER UPDATE OF state ON campaigns
FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION webhook_campaign_state();

-- A campaign's state change wakes the daemons at once (migration 0020): the engine
-- LISTENs on dialer_campaigns and reads the running campaigns again when told.
CREATE FUNCTION campaign_state_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Delivered at commit, once per transaction whatever the number of campaigns.
    PERFORM pg_notify('dialer_campaigns', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER campaigns_state_notify AFTER UPDATE OF state ON campaigns
FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION campaign_state_notify();

-- Agent dispositions and the status dictionary (migration 0010, dispositions.py).

-- The status dictionary. campaign_id NULL is the global dictionary; a
-- campaign's entries are its own (copied from the global ones marked auto_add
-- when the campaign is created, or added to it later), and only those can be
-- set for its calls.
CREATE TABLE dispositions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id   bigint REFERENCES campaigns (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    label         text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    description   text CHECK (length(description) <= 1000),
    -- What the system does with the contact (dispositions.py).
    action        text NOT NULL CHECK (action IN (
                      'call_again', 'personal_callback', 'follow_up_auto', 'do_not_call',
                      'success', 'declined', 'failed')),
    -- success, declined, failed: the contact's status_detail (NULL: the name).
    status_detail text CHECK (length(status_detail) BETWEEN 1 AND 100),
    -- call_again: how long until the contact is due again.
    delay_s       integer NOT NULL DEFAULT 0 CHECK (delay_s BETWEEN 0 AND 2592000),
    -- Inactive: can no longer be set. Hidden: not offered to agents, still accepted.
    active        boolean NOT NULL DEFAULT true,
    hidden        boolean NOT NULL DEFAULT false,
    -- Global entries only: copied into every campaign created from now on.
    auto_add      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (campaign_id IS NULL OR NOT auto_add),
    CHECK (status_detail IS NULL OR action IN ('success', 'declined', 'failed')),
    CHECK (delay_s = 0 OR action = 'call_again')
);
CREATE UNIQUE INDEX dispositions_scope_name_idx ON dispositions (coalesce(campaign_id, 0), name);

-- The disposition of an answered attempt: at most one. Set while the call is
-- still up, it changes the contact when the call's result is recorded
-- (applied_at NULL until then).
CREATE TABLE attempt_dispositions (
    attempt_id     uuid PRIMARY KEY REFERENCES attempts (id) ON DELETE CASCADE,
    campaign_id    bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id     bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- A used entry cannot be deleted (the API answers 409): deactivate it.
    disposition_id bigint NOT NULL REFERENCES dispositions (id),
    -- The entry's name and action when it was set: renaming it changes no history.
    name           text NOT NULL,
    action         text NOT NULL,
    -- The agent (queue member name) who set it, and the callback's owner.
    agent          text CHECK (agent ~ '^[A-Za-z0-9_.-]{1,80}$'),
    callback_at    timestamptz,
    note           text CHECK (length(note) <= 2000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    applied_at     timestamptz
);
CREATE INDEX attempt_dispositions_entry_idx ON attempt_dispositions (disposition_id);
CREATE INDEX attempt_dispositions_contact_idx ON attempt_dispositions (contact_id);

CREATE FUNCTION dispositions_auto_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dispositions (campaign_id, name, label, description, action, status_detail,
                              delay_s, active, hidden)
    SELECT NEW.id, name, label, description, action, status_detail, delay_s, active, hidden
    FROM dispositions WHERE campaign_id IS NULL AND auto_add AND active;
    RETURN NULL;
END
$$;

-- Whatever creates the campaign (API, CLI, demo): it gets the auto_add entries.
CREATE TRIGGER campaigns_dispositions AFTER INSERT ON campaigns
FOR EACH ROW EXECUTE FUNCTION dispositions_auto_add();

-- The default global dictionary is data: migration 0010 inserts it.

CREATE FUNCTION webhook_attempt_disposition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_campaign_name text;
    v_label         text;
    v_contact       jsonb;
    v_attempt       jsonb;
BEGIN
    IF NOT webhooks_enabled() THEN
        RETURN NULL;
    END IF;
    SELECT name INTO v_campaign_name FROM campaigns WHERE id = NEW.campaign_id;
    SELECT label INTO v_label FROM dispositions WHERE id = NEW.disposition_id;
    SELECT jsonb_build_object(
               'id', c.id, 'external_id', c.external_id, 'state', c.state,
               'status', c.status, 'status_detail', c.status_detail,
               'next_attempt_at', webhook_time(c.next_attempt_at),
               'callback_agent', c.callback_agent, 'closed_at', webhook_time(c.closed_at))
    INTO v_contact FROM contacts c WHERE c.id = NEW.contact_id;
    SELECT jsonb_build_object(
               'id', a.id, 'channel', a.channel, 'phone_slot', a.phone_slot,
               'number', a.number, 'outcome', a.outcome,
               'answered_at', webhook_time(a.answered_at), 'ended_at', webhook_time(a.ended_at))
    INTO v_attempt FROM attempts a WHERE a.id = NEW.attempt_id;
    PERFORM webhook_enqueue(
        'attempt.disposition', NEW.campaign_id, 'contact:' || NEW.contact_id,
        jsonb_build_object(
            'campaign', jsonb_build_object('id', NEW.campaign_id, 'name', v_campaign_name),
            'contact', v_contact,
            'attempt', v_attempt,
            'disposition', jsonb_build_object(
                'name', NEW.name, 'label', v_label, 'action', NEW.action,
                'agent', NEW.agent, 'callback_at', webhook_time(NEW.callback_at),
                'note', NEW.note, 'created_at', webhook_time(NEW.created_at),
                'applied_at', webhook_time(NEW.applied_at))));
    RETURN NULL;
END
$$;

-- Sent once the disposition has changed the contact (the payload shows the result).
CREATE TRIGGER attempt_dispositions_webhook AFTER UPDATE OF applied_at ON attempt_dispositions
FOR EACH ROW
WHEN (OLD.applied_at IS NULL AND NEW.applied_at IS NOT NULL)
EXECUTE FUNCTION webhook_attempt_disposition();

-- Users, roles, the audit log and the event log of /api/v1/events (migration 0012).

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

-- Task flows (migration 0017): the task log and the export tasks' rows and files.

-- The task log: every execution of a task for a contact. A call task's run is
-- written when its strategy closes it; the others' when an executor leases them
-- (state 'running', the daemon's instance id: a daemon that dies leaves it to be
-- taken over, like an open attempt) and ended once with their status (open: the
-- pass is tried again after a backoff) or, for a run its daemon never finished,
-- 'interrupted' (no status: the pass is tried again with the same key).
CREATE TABLE task_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id      bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    task            text NOT NULL,
    task_type       text NOT NULL CHECK (task_type IN (
                        'call', 'sms', 'email', 'webhook', 'export', 'wait', 'new_contact')),
    pass            integer NOT NULL CHECK (pass >= 1),
    try             integer NOT NULL CHECK (try >= 1),
    idempotency_key uuid NOT NULL,
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'ended', 'interrupted')),
    status          text CHECK (status IN ('open', 'success', 'declined', 'failed')),
    status_detail   text CHECK (length(status_detail) BETWEEN 1 AND 100),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at        timestamptz,
    error           text,
    -- Where the contact went next ('' : it stayed, closed), for the log's reader.
    moved_to        text,
    instance_id     integer REFERENCES dialer_instances (id),
    CHECK ((state = 'ended') = (status IS NOT NULL)),
    CHECK ((state = 'running') = (ended_at IS NULL))
);
CREATE INDEX task_runs_contact_idx ON task_runs (contact_id, id);
CREATE INDEX task_runs_campaign_idx ON task_runs (campaign_id, id);
-- What a daemon taking over looks at: runs no daemon finished.
CREATE INDEX task_runs_running_idx ON task_runs (instance_id) WHERE state = 'running';

-- Export tasks: the rows of each task's file of the day (the campaign's time zone),
-- one per pass (its idempotency key): a pass run twice writes its row once. The
-- files are written from these rows, and served from them over the API.
CREATE TABLE task_export_rows (
    idempotency_key uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    task            text NOT NULL,
    day             date NOT NULL,
    contact_id      bigint NOT NULL,
    row             jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_export_rows_file_idx ON task_export_rows (campaign_id, task, day, seq);

-- One row per file: its format, how many rows it holds in the database, and how many
-- the file in the export folder held when last written (fewer: to be written again).
CREATE TABLE task_export_files (
    campaign_id  bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    task         text NOT NULL,
    day          date NOT NULL,
    format       text NOT NULL CHECK (format IN ('csv', 'xlsx')),
    rows         bigint NOT NULL DEFAULT 0,
    written_rows bigint NOT NULL DEFAULT 0,
    written_at   timestamptz,
    PRIMARY KEY (campaign_id, task, day)
);
CREATE INDEX task_export_files_stale_idx ON task_export_files (campaign_id)
    WHERE written_rows < rows;
-- National do-not-call registries (migration 0015, campaigns/dnc_registries.py): one
-- partition of dnc_registry_numbers per registry load, attached in place of the
-- previous one (a replace) or added to (a merge). No foreign key: a COPY of tens of
-- millions of numbers must not probe another table per row; a registry's partition
-- goes with it.
CREATE TABLE dnc_registries (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- How numbers without a country code are read (US: 2025550123 is +12025550123).
    region     text NOT NULL CHECK (region ~ '^[A-Z]{2}$'),
    entries    bigint NOT NULL DEFAULT 0,
    -- The partition holding the numbers (dnc_registry_<id>_<generation>).
    generation integer NOT NULL DEFAULT 0,
    loaded_at  timestamptz,
    last_mode  text CHECK (last_mode IN ('replace', 'merge')),
    last_file  text CHECK (length(last_file) <= 255),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dnc_registry_numbers (
    registry_id integer NOT NULL,
    number      varchar(28) NOT NULL,
    -- NULL: no expiry. An expired entry no longer stops a call.
    expires_at  timestamptz
) PARTITION BY LIST (registry_id);
-- The check before every call probes this index in each registry's partition.
CREATE INDEX dnc_registry_numbers_number_idx ON dnc_registry_numbers (number)
    INCLUDE (expires_at);

-- A registry load's partition (campaigns/dnc_registries.py): a table like
-- dnc_registry_numbers, filled by COPY before it is attached, its registry_id and
-- expiry given by defaults so that COPY sends the numbers alone, and a CHECK that lets
-- ATTACH PARTITION skip scanning it.
CREATE FUNCTION dnc_registry_new_partition(
    p_registry integer, p_generation integer, p_expires_at timestamptz
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_table text := format('dnc_registry_%s_%s', p_registry, p_generation);
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE dnc_registry_numbers INCLUDING DEFAULTS)', v_table);
    EXECUTE format(
        'ALTER TABLE %I ALTER COLUMN registry_id SET DEFAULT %s, '
        'ALTER COLUMN expires_at SET DEFAULT %L::timestamptz, ADD CONSTRAINT %I CHECK (registry_id = %s)',
        v_table, p_registry, p_expires_at, v_table || '_registry', p_registry);
    RETURN v_table;
END
$$;

-- Puts a filled partition in place of the registry's previous one (replace), or adds
-- it (a new registry), in the caller's transaction: its index is built first (ATTACH
-- then adopts it), and the swap itself takes a moment, waiting at most 2 s at a time
-- for the claims that probe the registries (each a short transaction), up to ten times.
CREATE FUNCTION dnc_registry_swap(
    p_registry integer, p_generation integer, p_old_generation integer
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_new   text := format('dnc_registry_%s_%s', p_registry, p_generation);
    v_old   text := format('dnc_registry_%s_%s', p_registry, p_old_generation);
    v_wait  text := current_setting('lock_timeout');
    v_tries integer := 0;
BEGIN
    EXECUTE format('CREATE INDEX ON %I (number) INCLUDE (expires_at)', v_new);
    EXECUTE format('ANALYZE %I', v_new);
    PERFORM set_config('lock_timeout', '2s', true);
    LOOP
        BEGIN
            IF p_old_generation > 0 AND to_regclass(v_old) IS NOT NULL THEN
                EXECUTE format('ALTER TABLE dnc_registry_numbers DETACH PARTITION %I', v_old);
                EXECUTE format('DROP TABLE %I', v_old);
            END IF;
            EXECUTE format(
                'ALTER TABLE dnc_registry_numbers ATTACH PARTITION %I FOR VALUES IN (%s)',
                v_new, p_registry);
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            v_tries := v_tries + 1;
            IF v_tries >= 10 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(least(0.1 * 2 ^ v_tries, 5));
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', v_wait, true);
END
$$;

-- A registry's partition dropped (the registry deleted), with the same short waits.
CREATE FUNCTION dnc_registry_drop(p_registry integer, p_generation integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_table text := format('dnc_registry_%s_%s', p_registry, p_generation);
    v_wait  text := current_setting('lock_timeout');
    v_tries integer := 0;
BEGIN
    IF to_regclass(v_table) IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '2s', true);
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE dnc_registry_numbers DETACH PARTITION %I', v_table);
            EXECUTE format('DROP TABLE %I', v_table);
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            v_tries := v_tries + 1;
            IF v_tries >= 10 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(least(0.1 * 2 ^ v_tries, 5));
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', v_wait, true);
END
$$;

-- Data rights (migration 0015, contacts/data_rights.py). An erased person's numbers are
-- kept only as a keyed hash (HMAC-SHA256 under [privacy] hash_key) so that no import
-- brings them back; privacy_key holds a check value of that key, so a changed key is
-- noticed before it lets erased numbers in again.
CREATE TABLE erased_numbers (
    number_hash bytea PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE privacy_key (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    key_check  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Caller-ID pools (migration 0015, engine/caller_ids.py): a campaign with a pool calls
-- from one of its numbers, chosen right before the attempt is written.
CREATE TABLE caller_id_pools (
    campaign_id    bigint PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    -- round_robin: the number least recently used; least_used: the fewest calls today.
    rotation       text NOT NULL DEFAULT 'round_robin'
                   CHECK (rotation IN ('round_robin', 'least_used')),
    -- Calls per number per day (the campaign's time zone); NULL: no cap.
    daily_cap      integer CHECK (daily_cap BETWEEN 1 AND 1000000),
    -- Prefer a number of the called number's area, then of its country.
    local_presence boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE caller_ids (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id  bigint NOT NULL REFERENCES caller_id_pools (campaign_id) ON DELETE CASCADE,
    number       varchar(28) NOT NULL,
    -- Its country calling code, and its E.164 prefix up to its area code (+1202).
    country_code smallint NOT NULL,
    area_prefix  text NOT NULL,
    used_on      date,
    uses_today   integer NOT NULL DEFAULT 0,
    total_uses   bigint NOT NULL DEFAULT 0,
    last_used_at timestamptz,
    UNIQUE (campaign_id, number)
);
