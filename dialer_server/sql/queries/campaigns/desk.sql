-- What the agent desk and the supervisor view read and do (campaigns/desk.py).

-- name: desk_campaign
SELECT id, name, state, mode, queue, script, param_names, timezone, calling_window,
       preview_dial, preview_timeout_s, preview_skip_delay_s
FROM campaigns WHERE id = $1;

-- name: desk_campaigns
-- The campaigns an agent can join: agent modes and preview, not completed (an
-- agent may join a stopped campaign's queue before it starts).
SELECT id, name, state, mode, queue, preview_dial, preview_timeout_s
FROM campaigns
WHERE mode IN ('progressive', 'power', 'predictive', 'preview')
  AND state IN ('running', 'paused', 'stopped')
ORDER BY id;

-- name: desk_contact
SELECT * FROM contacts WHERE id = $1;

-- name: desk_attempt
SELECT id, campaign_id, contact_id, channel, number, phone_slot, state, outcome, agent,
       agent_connected_at, answered_at, ended_at, created_at
FROM attempts WHERE id = $1;

-- name: desk_history
-- Every attempt of the contact, newest first, with its disposition and note.
SELECT a.id, a.channel, a.number, a.phone_slot, a.state, a.outcome, a.created_at,
       a.answered_at, a.ended_at, a.agent, ad.name AS disposition, ad.note,
       ad.callback_at, ad.agent AS disposition_agent
FROM attempts a LEFT JOIN attempt_dispositions ad ON ad.attempt_id = a.id
WHERE a.contact_id = $1 ORDER BY a.created_at DESC, a.id DESC LIMIT 50;

-- name: desk_dispositions
-- What the desk offers: the campaign's active entries not hidden from agents.
SELECT name, label, action, description FROM dispositions
WHERE campaign_id = $1 AND active AND NOT hidden ORDER BY id;

-- name: desk_current_call
-- The agent's latest call taken in the last 12 hours that has no disposition yet.
SELECT a.id, a.campaign_id, a.contact_id, a.state, a.agent_connected_at
FROM attempts a
WHERE a.agent = $1 AND a.agent_connected_at > now() - interval '12 hours'
  AND NOT EXISTS (SELECT 1 FROM attempt_dispositions ad WHERE ad.attempt_id = a.id)
ORDER BY a.agent_connected_at DESC LIMIT 1;

-- name: desk_callbacks
SELECT k.id AS contact_id, k.campaign_id, c.name AS campaign_name, k.external_id, k.phone1,
       k.next_attempt_at AS callback_at, k.status_detail
FROM contacts k JOIN campaigns c ON c.id = k.campaign_id
WHERE k.callback_agent = $1 AND k.closed_at IS NULL
  AND k.next_attempt_at >= $2 AND k.next_attempt_at < $3
ORDER BY k.next_attempt_at;

-- name: release_stale_previews
-- Contacts shown to an agent long ago and never dialled (the desk was closed).
UPDATE contacts SET preview_agent = NULL, preview_offered_at = NULL,
                    next_attempt_at = coalesce(next_attempt_at, now()), updated_at = now()
WHERE preview_agent IS NOT NULL AND preview_offered_at < now() - make_interval(secs => $1)
  AND closed_at IS NULL AND NOT EXISTS (
      SELECT 1 FROM attempts a WHERE a.contact_id = contacts.id AND a.state <> 'ended');

-- name: release_agent_previews
-- The agent's shown contact, back to the others (due as it was planned).
UPDATE contacts SET preview_agent = NULL, preview_offered_at = NULL,
                    next_attempt_at = coalesce(next_attempt_at, now()), updated_at = now()
WHERE preview_agent = $1 AND closed_at IS NULL
RETURNING id;

-- name: agent_preview
SELECT * FROM contacts WHERE preview_agent = $1 AND closed_at IS NULL
ORDER BY preview_offered_at DESC LIMIT 1;

-- name: offer_preview
-- The oldest due contact nobody has, shown to the agent ($3: when it is
-- dialled without Call, NULL: only on Call). The same lease as the engine's.
WITH next AS (
    SELECT id FROM contacts
    WHERE campaign_id = $1 AND next_attempt_at IS NOT NULL AND next_attempt_at <= now()
      AND callback_agent IS NULL AND preview_agent IS NULL AND closed_at IS NULL
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE contacts k
SET preview_agent = $2, preview_offered_at = now(), next_attempt_at = $3, updated_at = now()
FROM next WHERE k.id = next.id
RETURNING k.*;

-- name: skip_preview
-- Back to the others, at the step the strategy planned, due after the skip delay.
UPDATE contacts k
SET preview_agent = NULL, preview_offered_at = NULL, updated_at = now(),
    next_attempt_at = now() + make_interval(secs => c.preview_skip_delay_s)
FROM campaigns c
WHERE k.id = $1 AND k.preview_agent = $2 AND k.closed_at IS NULL AND c.id = k.campaign_id
RETURNING k.id, k.next_attempt_at;

-- name: call_preview
-- Due now for its agent: the engine dials it once the agent is free, within the
-- campaign's line and rate limits, window and do-not-call lists.
UPDATE contacts SET next_attempt_at = now(), updated_at = now()
WHERE id = $1 AND preview_agent = $2 AND closed_at IS NULL
RETURNING id;

-- name: live_counts
-- Per campaign running or paused: its calls now and today's abandon rate
-- (abandoned / answered by a person, since midnight UTC).
SELECT c.id, c.name, c.state, c.mode, c.queue,
       count(a.id) FILTER (WHERE a.state = 'created') AS dialling,
       count(a.id) FILTER (WHERE a.state = 'sent') AS ringing,
       count(a.id) FILTER (WHERE a.state = 'answered') AS connected,
       (SELECT count(*) FROM attempts t WHERE t.campaign_id = c.id AND t.channel = 'call'
          AND t.state = 'ended' AND t.ended_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                                    AT TIME ZONE 'UTC'
          AND t.outcome = 'abandoned') AS abandoned_today,
       (SELECT count(*) FROM attempts t WHERE t.campaign_id = c.id AND t.channel = 'call'
          AND t.state = 'ended' AND t.ended_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                                    AT TIME ZONE 'UTC'
          AND (t.outcome = 'abandoned' OR t.agent IS NOT NULL)) AS answered_today
FROM campaigns c
LEFT JOIN attempts a ON a.campaign_id = c.id AND a.state <> 'ended' AND a.channel = 'call'
WHERE c.state IN ('running', 'paused')
GROUP BY c.id ORDER BY c.id;

-- name: agent_users
SELECT agent, username, display_name FROM users WHERE agent IS NOT NULL;
