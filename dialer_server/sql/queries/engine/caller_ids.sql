-- Caller-ID pools (engine/caller_ids.py): the choice of a call's caller ID in the claim.

-- name: pick_caller_id
-- One statement: the number to use, counted. $2: the campaign's today; $3: the daily
-- cap (NULL: none); $4: least_used (else round_robin); $5, $6: the called number's area
-- prefix and country code (local presence; NULL: off). A number's count of today is
-- its uses_today only while used_on is today.
WITH pick AS (
    SELECT id FROM caller_ids
    WHERE campaign_id = $1
      AND ($3::integer IS NULL OR used_on IS DISTINCT FROM $2::date OR uses_today < $3::integer)
    ORDER BY (area_prefix = $5::text) DESC NULLS LAST,
             (country_code = $6::smallint) DESC NULLS LAST,
             CASE WHEN $4::boolean AND used_on = $2::date THEN uses_today ELSE 0 END,
             last_used_at NULLS FIRST, id
    LIMIT 1
)
UPDATE caller_ids c
SET uses_today = CASE WHEN c.used_on = $2::date THEN c.uses_today + 1 ELSE 1 END,
    used_on = $2::date, total_uses = c.total_uses + 1, last_used_at = clock_timestamp()
FROM pick WHERE c.id = pick.id
RETURNING c.number;
