-- Campaigns' caller-ID pools (campaigns/caller_id_pools.py); the engine picks from them
-- (engine/caller_ids.py).

-- name: get_caller_id_pool
SELECT p.rotation, p.daily_cap, p.local_presence, p.updated_at,
       (now() AT TIME ZONE c.timezone)::date AS today
FROM caller_id_pools p JOIN campaigns c ON c.id = p.campaign_id
WHERE p.campaign_id = $1;

-- name: list_caller_ids
-- Each number with its calls of the campaign's today.
SELECT n.number, n.area_prefix,
       CASE WHEN n.used_on = (now() AT TIME ZONE c.timezone)::date THEN n.uses_today ELSE 0 END
           AS calls_today,
       n.total_uses AS calls, n.last_used_at
FROM caller_ids n JOIN campaigns c ON c.id = n.campaign_id
WHERE n.campaign_id = $1
ORDER BY n.number;

-- name: put_caller_id_pool
INSERT INTO caller_id_pools (campaign_id, rotation, daily_cap, local_presence)
VALUES ($1, $2, $3, $4)
ON CONFLICT (campaign_id) DO UPDATE
SET rotation = EXCLUDED.rotation, daily_cap = EXCLUDED.daily_cap,
    local_presence = EXCLUDED.local_presence, updated_at = now();

-- name: put_caller_ids
-- The pool's numbers become $2 (with their countries $3 and areas $4): the numbers it
-- keeps keep their counts.
WITH gone AS (
    DELETE FROM caller_ids WHERE campaign_id = $1 AND NOT number = ANY ($2::text[])
)
INSERT INTO caller_ids (campaign_id, number, country_code, area_prefix)
SELECT $1, n, c, a FROM unnest($2::text[], $3::smallint[], $4::text[]) AS t (n, c, a)
ON CONFLICT (campaign_id, number) DO NOTHING;

-- name: delete_caller_id_pool
DELETE FROM caller_id_pools WHERE campaign_id = $1;
