-- The queries of the HTTP API and the operator CLI (campaigns.py, contacts.py,
-- do_not_call.py). Loaded with every other named query by dialer_server.db.

-- name: campaign_view
SELECT c.*, s.name AS strategy_name, s.version AS strategy_version
FROM campaigns c LEFT JOIN strategies s ON s.id = c.strategy_id
WHERE c.id = $1;

-- name: list_campaigns
-- Keyset pagination: campaigns after id $2, $3 at most; $1 filters by state.
SELECT c.*, s.name AS strategy_name, s.version AS strategy_version
FROM campaigns c LEFT JOIN strategies s ON s.id = c.strategy_id
WHERE ($1::text IS NULL OR c.state = $1::text) AND c.id > $2
ORDER BY c.id
LIMIT $3;

-- name: lock_campaign
-- Serialises changes of one campaign with each other and with the engine (its
-- claims lock the same row FOR UPDATE). NO KEY: a contact import in progress
-- (FOR KEY SHARE) does not hold up a pause.
SELECT * FROM campaigns WHERE id = $1 FOR NO KEY UPDATE;

-- name: campaign_has_open_contacts
SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = $1 AND closed_at IS NULL);

-- name: campaign_open_attempts
SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended';

-- name: campaign_touched
-- Has the engine acted on any contact of the campaign yet? Until it has, no
-- daemon holds the campaign's strategy and its contacts have no plan.
SELECT EXISTS (SELECT 1 FROM attempts WHERE campaign_id = $1)
    OR EXISTS (SELECT 1 FROM contacts WHERE campaign_id = $1
               AND (state <> 'pending' OR next_step IS NOT NULL OR closed_at IS NOT NULL));

-- name: campaign_name_taken
SELECT EXISTS (SELECT 1 FROM campaigns WHERE name = $1 AND id IS DISTINCT FROM $2);

-- name: update_campaign_settings
-- $2..$21: campaigns.SETTINGS, in its order; $22 the strategy.
UPDATE campaigns
SET name = $2, trunk = $3, caller_id = $4, max_concurrent_calls = $5,
    max_calls_per_second = $6, default_region = $7, timezone = $8, calling_window = $9,
    mode = $10, amd = $11, ivr_playback = $12, machine_message = $13,
    webhook_attempts = $14, queue = $15, dial_ratio = $16, abandon_cap = $17,
    abandon_target = $18, max_dial_ratio = $19, abandon_message = $20, agent_wait_s = $21,
    strategy_id = $22, updated_at = now()
WHERE id = $1;

-- name: delete_campaign
DELETE FROM campaigns WHERE id = $1 RETURNING id;

-- name: campaign_counts_by_state
SELECT state, count(*) AS n FROM contacts WHERE campaign_id = $1 GROUP BY state ORDER BY state;

-- name: campaign_counts_by_status
SELECT status, status_detail, count(*) AS n FROM contacts WHERE campaign_id = $1
GROUP BY status, status_detail ORDER BY status, status_detail;

-- name: campaign_contact_totals
-- Per campaign: every contact, and those still open (for `campaign list`).
SELECT campaign_id, count(*) AS total, count(*) FILTER (WHERE closed_at IS NULL) AS open
FROM contacts GROUP BY campaign_id;

-- name: list_strategies
SELECT name, max(version) AS latest_version, array_agg(version ORDER BY version) AS versions,
       max(created_at) AS updated_at
FROM strategies GROUP BY name ORDER BY name;

-- name: strategy_version
SELECT id, name, version, definition, created_at FROM strategies
WHERE name = $1 AND version = $2;

-- name: strategy_latest_version
SELECT id, name, version, definition, created_at FROM strategies
WHERE name = $1 ORDER BY version DESC LIMIT 1;

-- name: insert_strategy
INSERT INTO strategies (name, version, definition) VALUES ($1, $2, $3)
RETURNING id, name, version, definition, created_at;

-- name: contact_by_external_id
SELECT * FROM contacts WHERE campaign_id = $1 AND external_id = $2;

-- name: list_contacts
-- Keyset pagination by id; every filter is optional (NULL). $6: the numbers a
-- phone filter may be stored as (as given, and in E.164).
SELECT * FROM contacts
WHERE campaign_id = $1 AND id > $2
  AND ($3::text IS NULL OR state = $3::text)
  AND ($4::text IS NULL OR status = $4::text)
  AND ($5::text IS NULL OR status_detail = $5::text)
  AND ($6::text[] IS NULL OR phone1 = ANY ($6::text[]) OR phone2 = ANY ($6::text[])
       OR phone3 = ANY ($6::text[]) OR phone4 = ANY ($6::text[]) OR phone5 = ANY ($6::text[]))
ORDER BY id
LIMIT $7;

-- name: update_contact_fields
UPDATE contacts
SET phone1 = $2, phone2 = $3, phone3 = $4, phone4 = $5, phone5 = $6,
    param1 = $7, param2 = $8, param3 = $9, param4 = $10, param5 = $11, param6 = $12,
    param7 = $13, param8 = $14, param9 = $15, param10 = $16, param11 = $17, param12 = $18,
    timezone = $19, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: cancel_contact
UPDATE contacts
SET state = 'cancelled', status = 'failed', status_detail = '$cancelled',
    next_attempt_at = NULL, next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, closed_at = now(), updated_at = now()
WHERE id = $1
RETURNING *;

-- name: reschedule_contact
-- Reopens the contact: due at $2, at step $3 (NULL: the strategy's first
-- action is decided again when it is claimed).
UPDATE contacts
SET state = 'pending', status = 'open', status_detail = '$none', closed_at = NULL,
    next_attempt_at = $2, next_step = $3, next_channel = $4, next_phone_slot = $5,
    callback_agent = NULL, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: dnc_add_numbers
INSERT INTO dnc_numbers (campaign_id, number, reason)
SELECT $1::bigint, n, $3::text FROM unnest($2::text[]) AS n
ON CONFLICT (number, coalesce(campaign_id, 0)) DO NOTHING
RETURNING number;

-- name: dnc_remove_number
DELETE FROM dnc_numbers WHERE number = $1 AND coalesce(campaign_id, 0) = coalesce($2::bigint, 0)
RETURNING id;

-- name: dnc_entries_of_number
-- The entries of a number: the global one and, with $2 NULL, every campaign's,
-- else only campaign $2's.
SELECT campaign_id, number, reason, created_at FROM dnc_numbers
WHERE number = $1 AND ($2::bigint IS NULL OR campaign_id IS NULL OR campaign_id = $2::bigint)
ORDER BY campaign_id NULLS FIRST;

-- name: dnc_list
-- One list (global: $1 NULL), keyset-paginated by id.
SELECT id, campaign_id, number, reason, created_at FROM dnc_numbers
WHERE campaign_id IS NOT DISTINCT FROM $1::bigint AND id > $2
ORDER BY id
LIMIT $3;

-- name: export_results
-- One row per contact with its attempts count and its last attempt.
SELECT c.id AS contact_id, c.external_id,
       c.phone1, c.phone2, c.phone3, c.phone4, c.phone5,
       c.param1, c.param2, c.param3, c.param4, c.param5, c.param6,
       c.param7, c.param8, c.param9, c.param10, c.param11, c.param12,
       c.timezone, c.state, c.status, c.status_detail,
       coalesce(last.attempts, 0) AS attempts, last.outcome AS last_outcome,
       last.number AS last_number, last.created_at AS last_attempt_at,
       c.next_attempt_at, c.closed_at
FROM contacts c
LEFT JOIN LATERAL (
    SELECT count(*) OVER () AS attempts, a.outcome, a.number, a.created_at
    FROM attempts a WHERE a.contact_id = c.id
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT 1
) last ON true
WHERE c.campaign_id = $1
ORDER BY c.id;
