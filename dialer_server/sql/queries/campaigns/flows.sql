-- Task flows as data, a campaign's Tasks overview and its task log (campaigns/flows.py).

-- name: insert_flow_version
-- Stores a flow version once; returns the stored definition either way so the
-- caller can tell a re-load of the same file from a changed one.
WITH ins AS (
    INSERT INTO flows (name, version, definition) VALUES ($1, $2, $3)
    ON CONFLICT (name, version) DO NOTHING
    RETURNING id, definition
)
SELECT id, definition FROM ins
UNION ALL
SELECT id, definition FROM flows WHERE name = $1 AND version = $2
LIMIT 1;

-- name: insert_flow
INSERT INTO flows (name, version, definition) VALUES ($1, $2, $3)
RETURNING id, name, version, definition, created_at;

-- name: list_flows
SELECT name, max(version) AS latest_version, array_agg(version ORDER BY version) AS versions,
       max(created_at) AS updated_at
FROM flows GROUP BY name ORDER BY name;

-- name: flow_version
SELECT id, name, version, definition, created_at FROM flows WHERE name = $1 AND version = $2;

-- name: flow_latest_version
SELECT id, name, version, definition, created_at FROM flows
WHERE name = $1 ORDER BY version DESC LIMIT 1;

-- name: campaign_flow
SELECT ca.id, ca.flow_id, f.definition FROM campaigns ca LEFT JOIN flows f ON f.id = ca.flow_id
WHERE ca.id = $1;

-- name: campaign_exists
SELECT id FROM campaigns WHERE id = $1;

-- name: contacts_by_task
-- Per task (NULL: the first), status and detail: the contacts, and those due now.
SELECT task, status, status_detail, count(*) AS n,
       count(*) FILTER (WHERE coalesce(task_due_at, next_attempt_at) <= now()) AS due
FROM contacts WHERE campaign_id = $1
GROUP BY task, status, status_detail
ORDER BY task NULLS FIRST, status, status_detail;

-- name: task_runs
SELECT id, contact_id, task, task_type, pass, try, idempotency_key, state, status,
       status_detail, started_at, ended_at, error, moved_to
FROM task_runs
WHERE campaign_id = $1 AND ($2::bigint IS NULL OR contact_id = $2::bigint)
  AND ($3::text IS NULL OR task = $3::text) AND id > $4
ORDER BY id
LIMIT $5;
