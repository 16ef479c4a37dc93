-- The stats refresher (observability/stats.py): gauges read every few seconds.

-- name: stats_campaigns
-- The campaigns that get series: running or paused ones, and those changed in
-- the last $1 seconds (so a finished campaign stays on the dashboards a while).
-- $2 bounds the label set whatever happens.
SELECT id, name, state, trunk, max_concurrent_calls, max_calls_per_second
FROM campaigns
WHERE state IN ('running', 'paused') OR updated_at > now() - make_interval(secs => $1)
ORDER BY state IN ('running', 'paused') DESC, updated_at DESC
LIMIT $2;

-- name: stats_contacts_by_state
SELECT campaign_id, state, count(*) AS contacts
FROM contacts WHERE campaign_id = ANY($1::bigint[])
GROUP BY campaign_id, state;

-- name: stats_due_contacts
-- The backlog: contacts due now (contacts_due_idx), and how long the oldest waited.
SELECT campaign_id, count(*) AS due,
       extract(epoch FROM now() - min(next_attempt_at))::float8 AS oldest_s
FROM contacts
WHERE campaign_id = ANY($1::bigint[]) AND next_attempt_at <= now()
GROUP BY campaign_id;

-- name: stats_webhook_outbox_exists
-- The outbox comes with migration 0003 (webhooks).
SELECT to_regclass('webhook_outbox') IS NOT NULL;

-- name: stats_webhook_outbox
-- Events waiting for delivery (webhook_outbox_due_idx), and the oldest one's age.
SELECT count(*) AS depth,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_s
FROM webhook_outbox WHERE delivered_at IS NULL;

-- name: stats_pbx_channels
-- The calls open on each PBX of the daemon's pool ($1), across every daemon: what
-- the claims count against its channel limit (attempts_open_pbx_idx).
SELECT pbx, count(*) AS calls FROM attempts
WHERE state <> 'ended' AND channel = 'call' AND pbx = ANY ($1::text[])
GROUP BY pbx;

-- name: stats_flow_contacts
-- Campaigns with a flow: contacts by task (NULL is the flow's first task) and status.
SELECT c.campaign_id, coalesce(c.task, f.definition ->> 'start') AS task, c.status,
       count(*) AS contacts
FROM contacts c
JOIN campaigns ca ON ca.id = c.campaign_id
JOIN flows f ON f.id = ca.flow_id
WHERE c.campaign_id = ANY($1::bigint[])
GROUP BY 1, 2, 3;
