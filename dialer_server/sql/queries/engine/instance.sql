-- This daemon's instance row (engine/instance.py).

-- name: register_instance
INSERT INTO dialer_instances (hostname, pid, pbxs) VALUES ($1, $2, $3) RETURNING id;

-- name: take_instance_lock
-- Held by this daemon's own session while it lives: the proof it is alive.
SELECT pg_advisory_lock($1, $2);

-- name: other_live_instances
-- How many other daemons are alive on this database: each holds its lock (1684, id).
SELECT count(*) FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = 1684::oid AND l.objsubid = 2 AND l.objid <> $1::oid;
