-- Campaign operations (issue 17): per-campaign webhooks, attempts across a campaign,
-- dedup on import, bulk operations, national do-not-call registries, data rights,
-- caller-ID pools and call recording.

-- Per-campaign webhooks. A campaign with a row here sends its events to its own URL,
-- signed with its own secret, and only the event types it lists (NULL: every type);
-- the others use the daemon's [webhooks] url. While previous_secret_until is in the
-- future, deliveries carry a second signature made with previous_secret (rotation).
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

-- Whose hook an event goes to: the campaign's own (its id), or the daemon's (NULL).
-- Fixed when the event is written: an event meant for a campaign's own CRM never
-- goes to another one, even if that campaign's hook is removed meanwhile.
ALTER TABLE webhook_outbox ADD COLUMN hook_campaign_id bigint;

-- Events are recorded while the daemon's webhooks are on, the event stream is on, or
-- any campaign has a hook of its own.
CREATE OR REPLACE FUNCTION webhooks_enabled() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT enabled OR events_enabled FROM webhook_settings), false)
        OR EXISTS (SELECT 1 FROM campaign_webhooks)
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
    IF coalesce((SELECT events_enabled FROM webhook_settings), false) THEN
        PERFORM event_publish(
            v_id, p_type, p_campaign_id,
            coalesce(p_data #>> '{agent,name}', p_data #>> '{attempt,agent}',
                     p_data #>> '{disposition,agent}'),
            v_payload);
    END IF;
END
$$;

-- Attempts across a campaign: listed and exported in (created_at, id) order, a keyset
-- that new attempts never reorder.
CREATE INDEX attempts_campaign_created_idx ON attempts (campaign_id, created_at, id);

-- Every phone of a contact, for dedup on import (a number already in the campaign, or
-- in any running campaign) and for finding a person by number across campaigns.
CREATE INDEX contacts_phones_idx ON contacts
    USING gin ((ARRAY[phone1, phone2, phone3, phone4, phone5]::text[]));

-- Dedup on import (contacts/importer.py): how many rows an import found to be
-- duplicates (listed in its report among the problems, counted apart), and the
-- options it ran with ({"dedup": "campaign", "duplicates": "keep"}).
ALTER TABLE imports ADD COLUMN duplicates bigint NOT NULL DEFAULT 0;
ALTER TABLE imports ADD COLUMN options jsonb;

-- Bulk recycle: a fresh strategy run counts only the attempts made since it started.
ALTER TABLE contacts ADD COLUMN run_started_at timestamptz;

-- National do-not-call registries (campaigns/dnc_registries.py): one partition of
-- dnc_registry_numbers per registry load, attached in place of the previous one (a
-- replace) or added to (a merge). No foreign key: a COPY of tens of millions of
-- numbers must not probe another table per row; a registry's partition goes with it.
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

-- Data rights (contacts/data_rights.py). An erased person's numbers are kept only as a
-- keyed hash (HMAC-SHA256 under [privacy] hash_key) so that no import brings them
-- back; privacy_key holds a check value of that key, so a changed key is noticed
-- before it lets erased numbers in again.
CREATE TABLE erased_numbers (
    number_hash bytea PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE privacy_key (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    key_check  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- An erased contact keeps its row (its attempts stay, without personal data, for
-- statistics) but none of its personal fields.
ALTER TABLE contacts ADD COLUMN erased_at timestamptz;
ALTER TABLE contacts ALTER COLUMN phone1 DROP NOT NULL;
ALTER TABLE contacts ADD CONSTRAINT contacts_phone1_unless_erased
    CHECK (phone1 IS NOT NULL OR erased_at IS NOT NULL);
ALTER TABLE attempts ALTER COLUMN number DROP NOT NULL;

-- Caller-ID pools (engine/caller_ids.py): a campaign with a pool calls from one of
-- its numbers, chosen right before the attempt is written.
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
ALTER TABLE attempts ADD COLUMN caller_id text;

-- Recording (campaigns/recordings.py): answered calls of a campaign that records are
-- recorded by our dialplan (MixMonitor), named by attempt id; the recordings task
-- finds each file, notes its path, duration and size, and deletes it when the
-- campaign's retention has passed.
ALTER TABLE campaigns ADD COLUMN record_calls boolean NOT NULL DEFAULT false;
ALTER TABLE campaigns ADD COLUMN recording_announcement text CHECK (recording_announcement ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$');
-- NULL: [recording] retention_days.
ALTER TABLE campaigns ADD COLUMN recording_retention_days integer
    CHECK (recording_retention_days BETWEEN 1 AND 36500);
-- stored: found, with its path, duration and size; missing: the campaign recorded
-- but the file never appeared where this dialer reads recordings; deleted: by
-- retention or by an erasure.
ALTER TABLE attempts ADD COLUMN recording_status text
    CHECK (recording_status IN ('stored', 'missing', 'deleted'));
ALTER TABLE attempts ADD COLUMN recording_path text;
ALTER TABLE attempts ADD COLUMN recording_duration_s numeric(10, 3);
ALTER TABLE attempts ADD COLUMN recording_bytes bigint;
ALTER TABLE attempts ADD COLUMN recording_deleted_at timestamptz;
-- What the recordings task still has to look at, and what retention deletes.
CREATE INDEX attempts_recording_stored_idx ON attempts (ended_at)
    WHERE recording_status = 'stored';

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
