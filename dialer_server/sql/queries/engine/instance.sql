-- This daemon's instance row (engine/instance.py).

-- name: register_instance
INSERT INTO dialer_instances (hostname, pid) VALUES ($1, $2) RETURNING id;
