-- The advisory locks of queue pacing (engine/pacing_locks.py).

-- name: try_pacing_lock
-- A queue's agents are paced by one daemon at a time (pacing_locks.py): a
-- session advisory lock ($1 = 1685, the hash of the queue's name $2) on a
-- connection of its own, dropped by PostgreSQL when that session ends. Two
-- names with one hash are only paced by the same daemon.
SELECT pg_try_advisory_lock($1, hashtext($2::text));

-- name: release_pacing_lock
SELECT pg_advisory_unlock($1, hashtext($2::text));
