-- This daemon's instance row (engine/instance.py).

-- name: register_instance
INSERT INTO dialer_instances (hostname, pid, pbxs) VALUES ($1, $2, $3) RETURNING id;

-- name: take_instance_lock
-- Held by this daemon's own session while it lives: the proof it is alive.
SELECT pg_advisory_lock($1, $2);
