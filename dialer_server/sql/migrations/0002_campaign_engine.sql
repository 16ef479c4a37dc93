-- The campaign engine: call strategies, the plan of each contact, daemon
-- instances that own calls in flight, do-not-call lists and SMS replies.

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

ALTER TABLE campaigns ADD COLUMN strategy_id bigint REFERENCES strategies (id);

-- What the strategy decided to do at next_attempt_at. next_step NULL with a
-- due time means the first action is still to be decided (a fresh contact).
ALTER TABLE contacts ADD COLUMN next_step smallint CHECK (next_step >= 0);
ALTER TABLE contacts ADD COLUMN next_channel text CHECK (next_channel IN ('call', 'sms'));
ALTER TABLE contacts ADD COLUMN next_phone_slot smallint CHECK (next_phone_slot BETWEEN 1 AND 5);
ALTER TABLE contacts ADD COLUMN closed_at timestamptz;

-- One row per daemon start. A live daemon holds a session advisory lock on
-- its id: when the lock is free, the daemon is gone (crash, kill -9, lost
-- connection) and its calls in flight can be taken over at once.
CREATE TABLE dialer_instances (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE attempts ADD COLUMN step smallint;
ALTER TABLE attempts ADD COLUMN instance_id integer REFERENCES dialer_instances (id);
-- What the SMS provider answered, or why a result is what it is.
ALTER TABLE attempts ADD COLUMN detail text;
ALTER TABLE attempts DROP CONSTRAINT attempts_outcome_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN (
    'answered', 'busy', 'no_answer', 'congestion', 'invalid_number', 'failed', 'machine',
    'dangling', 'sent'));

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
CREATE INDEX attempts_sms_number_idx ON attempts (number) WHERE channel = 'sms';
