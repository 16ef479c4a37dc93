-- Users, their API tokens and log-in sessions (accounts/users.py).

-- name: insert_user
INSERT INTO users (username, display_name, role, password_hash, agent, active)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: user_by_id
SELECT * FROM users WHERE id = $1;

-- name: user_by_username
SELECT * FROM users WHERE username = $1;

-- name: user_by_agent
SELECT * FROM users WHERE agent = $1;

-- name: lock_user
SELECT * FROM users WHERE id = $1 FOR UPDATE;

-- name: list_users
SELECT * FROM users WHERE id > $1 AND ($2::text IS NULL OR role = $2::text) ORDER BY id LIMIT $3;

-- name: update_user
UPDATE users
SET display_name = $2, role = $3, password_hash = $4, agent = $5, active = $6, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: delete_user
DELETE FROM users WHERE id = $1 RETURNING id;

-- name: username_taken
SELECT EXISTS (SELECT 1 FROM users WHERE username = $1);

-- name: agent_taken
SELECT EXISTS (SELECT 1 FROM users WHERE agent = $1 AND id IS DISTINCT FROM $2);

-- name: count_active_admins
SELECT count(*) FROM users WHERE role = 'admin' AND active AND id IS DISTINCT FROM $1;

-- name: insert_token
INSERT INTO api_tokens (user_id, kind, name, token_hash, expires_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, user_id, kind, name, created_at, expires_at, last_used_at;

-- name: token_principal
-- The user behind a token: active, and the token not expired.
SELECT t.id AS token_id, t.kind, u.id AS user_id, u.username, u.role, u.agent
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_hash = $1 AND u.active AND (t.expires_at IS NULL OR t.expires_at > now());

-- name: touch_token
-- At most one write a minute per token: a busy client must not write on every request.
UPDATE api_tokens SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: list_tokens
SELECT id, user_id, kind, name, created_at, expires_at, last_used_at
FROM api_tokens WHERE user_id = $1 ORDER BY id;

-- name: delete_token
DELETE FROM api_tokens WHERE id = $1 RETURNING id, user_id, kind, name;

-- name: delete_user_sessions
DELETE FROM api_tokens WHERE user_id = $1 AND kind = 'session';

-- name: delete_expired_tokens
DELETE FROM api_tokens WHERE expires_at < now() - interval '1 day';
