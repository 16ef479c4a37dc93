-- Campaigns' own webhooks (campaigns/hooks.py).

-- name: get_campaign_hook
SELECT campaign_id, url, secret, events, previous_secret_until,
       coalesce(previous_secret_until > now(), false) AS rotating, created_at, updated_at
FROM campaign_webhooks WHERE campaign_id = $1;

-- name: put_campaign_hook
-- A new secret given here replaces the current one at once (no grace period: use a
-- rotation for that), and ends any rotation in progress.
INSERT INTO campaign_webhooks AS h (campaign_id, url, secret, events)
VALUES ($1, $2, $3, $4::text[])
ON CONFLICT (campaign_id) DO UPDATE
SET url = EXCLUDED.url, events = EXCLUDED.events, secret = EXCLUDED.secret,
    previous_secret = CASE WHEN h.secret = EXCLUDED.secret THEN h.previous_secret END,
    previous_secret_until = CASE WHEN h.secret = EXCLUDED.secret
                                 THEN h.previous_secret_until END,
    updated_at = now()
RETURNING campaign_id, url, secret, events, previous_secret_until,
          coalesce(previous_secret_until > now(), false) AS rotating, created_at, updated_at;

-- name: rotate_campaign_hook
UPDATE campaign_webhooks
SET previous_secret = secret, previous_secret_until = now() + $3::interval, secret = $2,
    updated_at = now()
WHERE campaign_id = $1
RETURNING campaign_id, url, secret, events, previous_secret_until,
          coalesce(previous_secret_until > now(), false) AS rotating, created_at, updated_at;

-- name: delete_campaign_hook
DELETE FROM campaign_webhooks WHERE campaign_id = $1
RETURNING campaign_id, url, secret, events, previous_secret_until,
          coalesce(previous_secret_until > now(), false) AS rotating, created_at, updated_at;
