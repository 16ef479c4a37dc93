-- The do-not-call lists (campaigns/do_not_call.py).

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

-- name: dnc_registry_entries_of_number
-- The registries listing a number, with each entry's expiry (expired ones too).
SELECT g.name AS registry, g.region, r.expires_at, (r.expires_at IS NULL OR r.expires_at > now()) AS active
FROM dnc_registry_numbers r JOIN dnc_registries g ON g.id = r.registry_id
WHERE r.number = $1
ORDER BY g.name;
