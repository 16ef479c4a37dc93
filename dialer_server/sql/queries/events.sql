-- The event log behind /api/v1/events (events.py): sequencing, reading, retention.

-- name: set_events_recording
-- Whether the triggers record events in the log: written by each daemon at start.
INSERT INTO webhook_settings (id, events_enabled, updated_at) VALUES (true, $1, now())
ON CONFLICT (id) DO UPDATE SET events_enabled = EXCLUDED.events_enabled, updated_at = now();

-- name: want_events
-- A stream client is connected: the log records events from this commit on, and for
-- the retention time ($1 s) after, so that the client may resume once it left.
UPDATE webhook_settings
SET events_wanted_until = greatest(events_wanted_until, now() + make_interval(secs => $1))
WHERE events_enabled;

-- name: lock_sequencer
-- One sequencer at a time, across daemons, until its transaction ends.
SELECT pg_advisory_xact_lock(1686, 0);

-- name: sequence_events
-- Taken after lock_sequencer, in a new snapshot: every row visible now gets a
-- seq above every seq given before; a row committing later gets a higher one.
UPDATE events e SET seq = n.seq
FROM (
    SELECT id, (SELECT coalesce(max(seq), 0) FROM events) + row_number() OVER (ORDER BY id) AS seq
    FROM events WHERE seq IS NULL ORDER BY id LIMIT 5000
) n
WHERE e.id = n.id;

-- name: events_after
-- $4: an agent sees the events about them, and campaigns' state changes.
SELECT seq, event_type, campaign_id, agent, payload::text AS data FROM events
WHERE seq > $1
  AND ($2::bigint[] IS NULL OR campaign_id = ANY ($2::bigint[]))
  AND ($3::text[] IS NULL OR event_type = ANY ($3::text[]))
  AND ($4::text IS NULL OR agent = $4::text OR event_type = 'campaign.state_changed')
ORDER BY seq
LIMIT $5;

-- name: last_event_seq
SELECT coalesce(max(seq), 0) FROM events;

-- name: publish_live_event
-- A live event (not a webhook): in the log only, with an id of its own.
SELECT event_publish(v.id, $1::text, $2::bigint, $3::text,
                     jsonb_build_object('id', v.id, 'type', $1::text,
                                        'occurred_at', webhook_time(now()))
                     || $4::jsonb)
FROM (SELECT gen_random_uuid() AS id) v
WHERE events_wanted();

-- name: delete_old_events
-- The newest event is always kept: the next seq follows it, never reusing an id.
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE created_at < now() - make_interval(secs => $1)
      AND seq < (SELECT max(seq) FROM events)
    LIMIT $2
);
