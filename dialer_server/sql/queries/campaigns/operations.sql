-- Campaign and strategy operations of the HTTP API and the CLI (campaigns/operations.py).

-- name: campaign_view
SELECT c.*, s.name AS strategy_name, s.version AS strategy_version,
       f.name AS flow_name, f.version AS flow_version
FROM campaigns c LEFT JOIN strategies s ON s.id = c.strategy_id
LEFT JOIN flows f ON f.id = c.flow_id
WHERE c.id = $1;

-- name: list_campaigns
-- Keyset pagination: campaigns after id $2, $3 at most; $1 filters by state.
SELECT c.*, s.name AS strategy_name, s.version AS strategy_version,
       f.name AS flow_name, f.version AS flow_version
FROM campaigns c LEFT JOIN strategies s ON s.id = c.strategy_id
LEFT JOIN flows f ON f.id = c.flow_id
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
-- $2..$27: campaigns.SETTINGS, in its order; $28 the strategy.
UPDATE campaigns
SET name = $2, trunk = $3, caller_id = $4, max_concurrent_calls = $5,
    max_calls_per_second = $6, default_region = $7, timezone = $8, calling_window = $9,
    mode = $10, amd = $11, ivr_playback = $12, machine_message = $13,
    webhook_attempts = $14, queue = $15, dial_ratio = $16, abandon_cap = $17,
    abandon_target = $18, max_dial_ratio = $19, abandon_message = $20, agent_wait_s = $21,
    script = $22, param_names = $23, preview_dial = $24, preview_timeout_s = $25,
    preview_skip_delay_s = $26, pbxs = $27, strategy_id = $28, updated_at = now()
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

-- name: set_campaign_flow
UPDATE campaigns SET flow_id = $2, updated_at = now() WHERE id = $1;
