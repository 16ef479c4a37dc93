-- Webhooks to the CRM (webhooks.py): the outbox the triggers of migration 0003 fill,
-- and its senders.

-- name: set_webhooks_recording
-- Whether the triggers record events: written by each daemon at start.
INSERT INTO webhook_settings (id, enabled, updated_at) VALUES (true, $1, now())
ON CONFLICT (id) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now();

-- name: set_campaign_webhook_attempts
UPDATE campaigns SET webhook_attempts = $2, updated_at = now() WHERE id = $1 RETURNING id;

-- name: claim_webhooks
-- The one way events are leased: due events, each the oldest undelivered one
-- of its ordering key, skipping those another daemon holds. The lease is the
-- pushed-back due time: if this daemon dies while sending, the event is due
-- again when the lease ends (delivered at least once).
WITH due AS (
    SELECT o.id FROM webhook_outbox o
    WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
      AND NOT EXISTS (
          SELECT 1 FROM webhook_outbox e
          WHERE e.ordering_key = o.ordering_key AND e.delivered_at IS NULL AND e.seq < o.seq)
    ORDER BY o.next_attempt_at, o.seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_outbox o
SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1
FROM due WHERE o.id = due.id
RETURNING o.id, o.seq, o.event_type, o.payload::text AS body, o.attempts;

-- name: webhook_delivered
-- Delivered: the events waiting behind it in its ordering key are due at once.
WITH done AS (
    UPDATE webhook_outbox SET delivered_at = now()
    WHERE id = $1 AND delivered_at IS NULL
    RETURNING ordering_key, seq
)
UPDATE webhook_outbox f SET next_attempt_at = least(f.next_attempt_at, now())
FROM done
WHERE f.ordering_key = done.ordering_key AND f.delivered_at IS NULL AND f.seq > done.seq;

-- name: webhook_failed
-- Not delivered: due again after $2 seconds, and the events behind it no earlier.
WITH failed AS (
    UPDATE webhook_outbox
    SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
    WHERE id = $1 AND delivered_at IS NULL
    RETURNING ordering_key, seq, next_attempt_at
)
UPDATE webhook_outbox f SET next_attempt_at = greatest(f.next_attempt_at, failed.next_attempt_at)
FROM failed
WHERE f.ordering_key = failed.ordering_key AND f.delivered_at IS NULL AND f.seq > failed.seq;

-- name: next_webhook_due_in
-- Seconds until the next undelivered event is due (negative: due now); NULL: none.
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
FROM webhook_outbox WHERE delivered_at IS NULL;

-- name: delete_delivered_webhooks
DELETE FROM webhook_outbox WHERE id IN (
    SELECT id FROM webhook_outbox
    WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(secs => $1)
    LIMIT $2
);
