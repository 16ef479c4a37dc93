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
-- again when the lease ends (delivered at least once). $3: this daemon has a
-- [webhooks] url of its own (else it sends only the events of campaigns' own
-- hooks). Each row comes with its campaign's hook, if it has one (hook_url
-- NULL while hook_campaign_id is set: that hook is gone).
-- An event never tried whose predecessors are all delivered is due whatever its
-- next_attempt_at: that was only its place behind them, and when it was written
-- while the one before it was being sent, the delivery that should have made it
-- due may have come before it committed.
WITH due AS (
    SELECT o.id, o.hook_campaign_id FROM webhook_outbox o
    WHERE o.delivered_at IS NULL AND (o.next_attempt_at <= now() OR o.attempts = 0)
      AND (o.hook_campaign_id IS NOT NULL OR $3)
      AND NOT EXISTS (
          SELECT 1 FROM webhook_outbox e
          WHERE e.ordering_key = o.ordering_key AND e.delivered_at IS NULL AND e.seq < o.seq)
    ORDER BY o.next_attempt_at, o.seq
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE webhook_outbox o
SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1
FROM due LEFT JOIN campaign_webhooks h ON h.campaign_id = due.hook_campaign_id
WHERE o.id = due.id
RETURNING o.id, o.seq, o.event_type, o.payload::text AS body, o.attempts, o.hook_campaign_id,
          h.url AS hook_url, h.secret AS hook_secret, h.previous_secret AS hook_previous_secret,
          coalesce(h.previous_secret_until > now(), false) AS hook_rotating;

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

-- name: webhook_dropped
-- Never to be sent (its campaign's own hook is gone): out of the way of the
-- events behind it, with the reason kept.
WITH dropped AS (
    UPDATE webhook_outbox SET delivered_at = now(), last_error = $2
    WHERE id = $1 AND delivered_at IS NULL
    RETURNING ordering_key, seq
)
UPDATE webhook_outbox f SET next_attempt_at = least(f.next_attempt_at, now())
FROM dropped
WHERE f.ordering_key = dropped.ordering_key AND f.delivered_at IS NULL AND f.seq > dropped.seq;

-- name: next_webhook_due_in
-- Seconds until the next event this daemon may send is due (negative: due now);
-- NULL: none. Only the first undelivered event of each ordering key can be sent
-- (an event never tried: at once, as in claim_webhooks). $1: as claim_webhooks' $3.
SELECT extract(epoch FROM min(CASE WHEN o.attempts = 0 THEN least(o.next_attempt_at, now())
                                   ELSE o.next_attempt_at END) - now())::float8
FROM webhook_outbox o
WHERE o.delivered_at IS NULL AND (o.hook_campaign_id IS NOT NULL OR $1)
  AND NOT EXISTS (
      SELECT 1 FROM webhook_outbox e
      WHERE e.ordering_key = o.ordering_key AND e.delivered_at IS NULL AND e.seq < o.seq);

-- name: delete_delivered_webhooks
DELETE FROM webhook_outbox WHERE id IN (
    SELECT id FROM webhook_outbox
    WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(secs => $1)
    LIMIT $2
);
