-- National do-not-call registries (campaigns/dnc_registries.py): one partition of
-- dnc_registry_numbers each, loaded by COPY (migration 0015's functions name and swap
-- the partitions).

-- name: list_dnc_registries
SELECT * FROM dnc_registries ORDER BY name;

-- name: get_dnc_registry
SELECT * FROM dnc_registries WHERE name = $1;

-- name: lock_dnc_registry
-- One load of a registry at a time.
SELECT * FROM dnc_registries WHERE name = $1 FOR UPDATE;

-- name: insert_dnc_registry
INSERT INTO dnc_registries (name, region) VALUES ($1, $2) RETURNING *;

-- name: set_dnc_registry_region
UPDATE dnc_registries SET region = $2 WHERE id = $1;

-- name: new_dnc_registry_partition
SELECT dnc_registry_new_partition($1, $2, $3);

-- name: swap_dnc_registry_partition
SELECT dnc_registry_swap($1, $2, $3);

-- name: drop_dnc_registry_partition
SELECT dnc_registry_drop($1, $2);

-- name: delete_dnc_registry
DELETE FROM dnc_registries WHERE id = $1;

-- name: dnc_registry_loaded
UPDATE dnc_registries
SET generation = $2, entries = $3, loaded_at = now(), last_mode = $4, last_file = $5
WHERE id = $1;

-- name: create_dnc_registry_merge
-- A merge's numbers (COPY sends numbers only).
CREATE TEMP TABLE dnc_registry_merge (number varchar(28) NOT NULL) ON COMMIT DROP;

-- name: drop_dnc_registry_merge
DROP TABLE IF EXISTS dnc_registry_merge;

-- name: delete_expired_dnc_registry_entries
-- Before a merge: the registry's expired entries go (those the merge lists again come
-- back with its expiry).
DELETE FROM dnc_registry_numbers WHERE registry_id = $1 AND expires_at <= now();

-- name: merge_dnc_registry
-- The merge's numbers into registry $1 with expiry $2: those listed already get it, the
-- others are added (the insert's count is the statement's).
WITH incoming AS (SELECT DISTINCT number FROM dnc_registry_merge),
updated AS (
    UPDATE dnc_registry_numbers r SET expires_at = $2
    FROM incoming i
    WHERE r.registry_id = $1 AND r.number = i.number
)
INSERT INTO dnc_registry_numbers (registry_id, number, expires_at)
SELECT $1, i.number, $2 FROM incoming i
WHERE NOT EXISTS (
    SELECT 1 FROM dnc_registry_numbers r WHERE r.registry_id = $1 AND r.number = i.number);

-- name: dnc_registry_merged
UPDATE dnc_registries
SET generation = $2, entries = entries + $3, loaded_at = now(), last_mode = $4, last_file = $5
WHERE id = $1;
