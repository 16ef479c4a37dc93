-- Call recordings (campaigns/recordings.py): a campaign's settings, each call's recording
-- found, served and deleted.

-- name: set_campaign_recording
UPDATE campaigns
SET record_calls = $2, recording_announcement = $3, recording_retention_days = $4,
    updated_at = now()
WHERE id = $1
RETURNING record_calls, recording_announcement, recording_retention_days;

-- name: attempt_recording
SELECT recording_status, recording_path, recording_deleted_at FROM attempts WHERE id = $1;

-- name: recordings_to_find
-- The answered calls of the last day of campaigns that record, whose recording is not
-- found yet (attempts_campaign_ended_idx, campaign by campaign), the oldest first.
SELECT a.id, extract(epoch FROM now() - a.ended_at)::float8 AS ended_s
FROM campaigns c JOIN attempts a ON a.campaign_id = c.id
WHERE c.record_calls AND a.channel = 'call' AND a.state = 'ended'
  AND a.ended_at > now() - interval '1 day'
  AND a.answered_at IS NOT NULL AND a.recording_status IS NULL
ORDER BY a.ended_at
LIMIT $1;

-- name: recording_stored
UPDATE attempts
SET recording_status = 'stored', recording_path = $2, recording_duration_s = $3,
    recording_bytes = $4
WHERE id = $1 AND recording_status IS NULL;

-- name: recording_missing
UPDATE attempts SET recording_status = 'missing' WHERE id = $1 AND recording_status IS NULL;

-- name: recordings_past_retention
-- Stored recordings past their campaign's retention ($1: the default, in days; none is
-- shorter than a day, which keeps the scan on attempts_recording_stored_idx).
SELECT a.id FROM attempts a JOIN campaigns c ON c.id = a.campaign_id
WHERE a.recording_status = 'stored' AND a.ended_at < now() - interval '1 day'
  AND a.ended_at < now() - make_interval(
      secs => coalesce(c.recording_retention_days::float8, $1::float8) * 86400)
ORDER BY a.ended_at
LIMIT $2;

-- name: recording_deleted
UPDATE attempts
SET recording_status = 'deleted', recording_path = NULL, recording_deleted_at = now()
WHERE id = $1 AND recording_status = 'stored';
