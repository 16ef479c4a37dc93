-- Agent dispositions (issue #6): the status dictionary, the result an agent or
-- a CRM sets for an answered call, and personal callbacks.

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

-- A personal callback's owner ($follow_up_personal, seed 001's $owner): the
-- engine dials the contact only while this agent is free.
ALTER TABLE contacts ADD COLUMN callback_agent text
    CHECK (callback_agent ~ '^[A-Za-z0-9_.-]{1,80}$');

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

-- The default global dictionary, every entry added to new campaigns.
INSERT INTO dispositions (name, label, action, status_detail, delay_s, auto_add) VALUES
    ('interested', 'Interested', 'success', NULL, 0, true),
    ('not_interested', 'Not interested', 'declined', NULL, 0, true),
    ('call_back', 'Call back (personal)', 'personal_callback', NULL, 0, true),
    ('call_later', 'Call later', 'follow_up_auto', NULL, 0, true),
    ('call_again', 'Call again', 'call_again', NULL, 3600, true),
    ('do_not_call', 'Do not call', 'do_not_call', NULL, 0, true),
    -- Seed 001: the number does not reach the right person.
    ('wrong_person', 'Wrong person', 'failed', '$invalid_contact', 0, true);

-- Campaigns that exist already get them too.
INSERT INTO dispositions (campaign_id, name, label, description, action, status_detail,
                          delay_s, active, hidden)
SELECT c.id, d.name, d.label, d.description, d.action, d.status_detail, d.delay_s, d.active,
       d.hidden
FROM campaigns c CROSS JOIN dispositions d
WHERE d.campaign_id IS NULL AND d.auto_add;

-- Webhooks: a disposition event, and contact.final_state again when a
-- disposition changes a closed contact's status (connected/success becomes
-- connected/declined: the state alone does not change).
ALTER TABLE webhook_outbox DROP CONSTRAINT webhook_outbox_event_type_check;
ALTER TABLE webhook_outbox ADD CONSTRAINT webhook_outbox_event_type_check CHECK (event_type IN (
    'contact.final_state', 'attempt.result', 'campaign.state_changed', 'attempt.disposition'));

DROP TRIGGER contacts_webhook ON contacts;
CREATE TRIGGER contacts_webhook AFTER UPDATE OF state, status, status_detail, closed_at
ON contacts
FOR EACH ROW
WHEN (NEW.closed_at IS NOT NULL
      AND (OLD.closed_at IS NULL OR OLD.state IS DISTINCT FROM NEW.state
           OR OLD.status IS DISTINCT FROM NEW.status
           OR OLD.status_detail IS DISTINCT FROM NEW.status_detail))
EXECUTE FUNCTION webhook_contact_final_state();

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
