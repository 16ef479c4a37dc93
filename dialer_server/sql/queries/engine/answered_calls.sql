-- What our dialplan reported about answered calls (engine/answered_calls.py).

-- name: record_dialplan_report
-- Written with the attempt's result, in its transaction, just before it ends the
-- attempt (whose attempt.result webhook carries them): AMD's verdict and the
-- keys pressed in the IVR ('' when the IVR heard none). An attempt already
-- ended keeps what it has, as it keeps its result.
UPDATE attempts
SET amd_status = coalesce($2, amd_status), ivr_digits = coalesce($3, ivr_digits)
WHERE id = $1 AND state <> 'ended';

-- name: record_agent_report
-- Agent modes, written like record_dialplan_report: the queue member who took
-- the call and when, or that the caller was abandoned and why; the wait.
UPDATE attempts
SET agent = coalesce($2, agent), agent_connected_at = coalesce($3, agent_connected_at),
    agent_wait_ms = coalesce($4, agent_wait_ms), abandoned = coalesce($5, abandoned),
    abandon_reason = coalesce($6, abandon_reason)
WHERE id = $1 AND state <> 'ended';
