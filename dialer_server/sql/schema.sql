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
    calling_window       jsonb
);

CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- The CRM's own id for this contact; re-imports update rather than duplicate.
    external_id     text,
    phone1          varchar(28) NOT NULL,
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
    UNIQUE (campaign_id, external_id)
);

-- The scheduler only ever looks at due contacts: keep that index small.
CREATE INDEX contacts_due_idx ON contacts (campaign_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX contacts_campaign_state_idx ON contacts (campaign_id, state);

-- One row per daemon start. A live daemon holds a session advisory lock on
-- its id: when the lock is free, the daemon is gone (crash, kill -9, lost
-- connection) and its calls in flight can be taken over at once.
CREATE TABLE dialer_instances (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE attempts (
    -- Also the Originate ChannelId, hence Asterisk's Uniqueid for the call:
    -- every AMI event of the call carries it.
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id        bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id         bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel            text NOT NULL DEFAULT 'call' CHECK (channel IN ('call', 'sms')),
    phone_slot         smallint CHECK (phone_slot BETWEEN 1 AND 5),
    number             varchar(28) NOT NULL,
    -- created: row written, Originate not yet sent (a crash here means the call
    -- may or may not exist: reconciliation decides); sent: Asterisk accepted
    -- it; answered; ended: outcome recorded.
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
                           'failed', 'machine', 'dangling', 'sent')),
    step               smallint,
    instance_id        integer REFERENCES dialer_instances (id),
    -- What the SMS provider answered, or why a result is what it is.
    detail             text,
    CHECK ((state = 'ended') = (outcome IS NOT NULL))
);

CREATE INDEX attempts_contact_idx ON attempts (contact_id, created_at);
-- Attempts whose result is still open: what reconciliation walks after a restart.
CREATE INDEX attempts_open_idx ON attempts (created_at) WHERE state <> 'ended';
CREATE INDEX attempts_sms_number_idx ON attempts (number) WHERE channel = 'sms';

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
    contact_id  bigint REFERENCES contacts (id) ON DELETE SET NULL
);
