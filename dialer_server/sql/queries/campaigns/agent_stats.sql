-- Agent statistics of a campaign over a time range [$2, $3) (campaigns/agent_stats.py).

-- name: agent_stats_totals
-- Calls created in the range: placed, answered by a person (connected to an
-- agent, or abandoned), connected, abandoned; the agents' talk time (agent
-- connected -> hangup, now() while up) that falls in the range, of any call;
-- the distinct agents who talked in it; when the range's first call started
-- and its last one ended.
SELECT count(*) FILTER (WHERE created_at >= $2) AS calls,
       count(*) FILTER (WHERE created_at >= $2
                          AND outcome IN ('answered', 'abandoned')) AS answered,
       count(*) FILTER (WHERE created_at >= $2 AND agent_connected_at IS NOT NULL) AS connected,
       count(*) FILTER (WHERE created_at >= $2 AND outcome = 'abandoned') AS abandoned,
       coalesce(sum(greatest(0, extract(epoch FROM
                    least(coalesce(ended_at, now()), $3) - greatest(agent_connected_at, $2))))
                FILTER (WHERE agent_connected_at IS NOT NULL), 0)::float8 AS talk_s,
       count(DISTINCT agent) FILTER (WHERE agent_connected_at < $3
                                       AND coalesce(ended_at, now()) > $2) AS agents,
       min(created_at) FILTER (WHERE created_at >= $2) AS first_call_at,
       max(coalesce(ended_at, now())) FILTER (WHERE created_at >= $2) AS last_end_at
FROM attempts
WHERE campaign_id = $1 AND channel = 'call' AND created_at < $3
  AND (created_at >= $2 OR coalesce(ended_at, now()) > $2);

-- name: agent_stats_by_agent
-- Per agent: calls taken that were created in the range, talk time in the range.
SELECT agent, count(*) FILTER (WHERE created_at >= $2) AS calls,
       coalesce(sum(greatest(0, extract(epoch FROM
                    least(coalesce(ended_at, now()), $3) - greatest(agent_connected_at, $2)))),
                0)::float8 AS talk_s
FROM attempts
WHERE campaign_id = $1 AND channel = 'call' AND agent_connected_at IS NOT NULL
  AND agent_connected_at < $3 AND coalesce(ended_at, now()) > $2
GROUP BY agent ORDER BY agent;
