-- What predictive pacing measures (engine/agent_dialing.py).

-- name: agent_pacing_stats
-- A predictive campaign's counts (agent_pacing.PacingStats): calls answered by
-- a person (reached an agent, or abandoned) and abandoned over the last 24 h
-- and 30 days; and of its latest $2 call results, how many a person answered
-- (the answer rate), and the mean talk time of the latest $2 calls agents
-- took. Dangling calls say nothing about either, nor do calls our carrier
-- refused (trunk_error): they never reached anyone.
SELECT
    count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')
                       AND ended_at > now() - interval '24 hours') AS day_answered,
    count(*) FILTER (WHERE outcome = 'abandoned'
                       AND ended_at > now() - interval '24 hours') AS day_abandoned,
    count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')) AS month_answered,
    count(*) FILTER (WHERE outcome = 'abandoned') AS month_abandoned,
    (SELECT count(*) FROM (
         SELECT 1 FROM attempts
         WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
           AND outcome NOT IN ('dangling', 'trunk_error')
         ORDER BY ended_at DESC LIMIT $2) r) AS recent_calls,
    (SELECT count(*) FILTER (WHERE r.outcome IN ('answered', 'abandoned')) FROM (
         SELECT outcome FROM attempts
         WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
           AND outcome NOT IN ('dangling', 'trunk_error')
         ORDER BY ended_at DESC LIMIT $2) r) AS recent_answered,
    (SELECT avg(extract(epoch FROM r.ended_at - r.agent_connected_at))::float8 FROM (
         SELECT ended_at, agent_connected_at FROM attempts
         WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
           AND agent_connected_at IS NOT NULL
         ORDER BY ended_at DESC LIMIT $2) r) AS mean_talk_s
FROM attempts
WHERE campaign_id = $1 AND channel = 'call' AND state = 'ended'
  AND ended_at > now() - interval '30 days';
