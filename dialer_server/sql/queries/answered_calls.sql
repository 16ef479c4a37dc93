-- What our dialplan reported about answered calls (dialer_server/answered_calls.py).

-- name: record_dialplan_report
-- Written with the attempt's result, in its transaction, just before it ends the
-- attempt (whose attempt.result webhook carries them): AMD's verdict and the
-- keys pressed in the IVR ('' when the IVR heard none). An attempt already
-- ended keeps what it has, as it keeps its result.
UPDATE attempts
SET amd_status = coalesce($2, amd_status), ivr_digits = coalesce($3, ivr_digits)
WHERE id = $1 AND state <> 'ended';
