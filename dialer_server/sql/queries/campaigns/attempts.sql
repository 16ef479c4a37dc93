-- Attempts across a campaign (campaigns/attempts.py): pages and exports in the keyset
-- order (created_at, id) of attempts_campaign_created_idx.

-- name: list_campaign_attempts
-- $2, $3: the cursor (the page starts after it); $4-$9: filters, NULL for any
-- (outcomes, hangup cause, channel, created before, agent, disposition name); $10:
-- how many.
SELECT a.id AS attempt_id, a.contact_id, c.external_id, a.channel, a.phone_slot, a.number,
       a.caller_id, a.step, a.state, a.outcome, a.detail, a.hangup_cause, a.hangup_cause_text,
       a.created_at, a.sent_at, a.answered_at, a.ended_at,
       round(extract(epoch FROM a.ended_at - a.answered_at), 3)::float8 AS talk_s,
       a.amd_status, a.ivr_digits, a.agent, a.agent_connected_at, a.agent_wait_ms, a.abandoned,
       ad.name AS disposition, a.recording_status, a.recording_duration_s::float8
FROM attempts a
JOIN contacts c ON c.id = a.contact_id
LEFT JOIN attempt_dispositions ad ON ad.attempt_id = a.id
WHERE a.campaign_id = $1
  AND (a.created_at, a.id) > ($2::timestamptz, $3::uuid)
  AND ($4::text[] IS NULL OR a.outcome = ANY ($4::text[]))
  AND ($5::integer IS NULL OR a.hangup_cause = $5::integer)
  AND ($6::text IS NULL OR a.channel = $6::text)
  AND a.created_at < coalesce($7::timestamptz, 'infinity')
  AND ($8::text IS NULL OR a.agent = $8::text)
  AND ($9::text IS NULL OR ad.name = $9::text)
ORDER BY a.created_at, a.id
LIMIT $10;
