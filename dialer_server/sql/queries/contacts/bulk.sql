-- Bulk operations on a campaign's contacts (contacts/bulk.py): a selection locked and
-- noted in a temporary table, then one statement per action. A recycled or moved
-- contact starts its campaign's flow again (its first task, as when imported).

-- name: bulk_create_selection
CREATE TEMP TABLE IF NOT EXISTS bulk_selection (id bigint PRIMARY KEY) ON COMMIT DROP;

-- name: bulk_drop_selection
DROP TABLE IF EXISTS bulk_selection;

-- name: bulk_select_contacts
-- The contacts of campaign $1 the filter selects ($2 states, $3 statuses, $4 status
-- details, $5 outcomes of their latest attempt, $6 latest attempt made before; NULL:
-- any) that action $7 may change, locked until the transaction ends.
INSERT INTO bulk_selection (id)
SELECT c.id FROM contacts c
LEFT JOIN LATERAL (
    SELECT a.outcome, a.created_at FROM attempts a
    WHERE a.contact_id = c.id ORDER BY a.created_at DESC, a.id DESC LIMIT 1
) last ON true
WHERE c.campaign_id = $1 AND c.erased_at IS NULL
  AND ($2::text[] IS NULL OR c.state = ANY ($2::text[]))
  AND ($3::text[] IS NULL OR c.status = ANY ($3::text[]))
  AND ($4::text[] IS NULL OR c.status_detail = ANY ($4::text[]))
  AND ($5::text[] IS NULL OR last.outcome = ANY ($5::text[]))
  AND ($6::timestamptz IS NULL OR last.created_at < $6::timestamptz)
  AND CASE $7::text
          WHEN 'cancel' THEN c.closed_at IS NULL OR c.state = 'sms_sent'
          ELSE NOT EXISTS (SELECT 1 FROM attempts o
                           WHERE o.contact_id = c.id AND o.state <> 'ended')
               AND NOT EXISTS (SELECT 1 FROM task_runs r
                               WHERE r.contact_id = c.id AND r.state = 'running')
      END
ORDER BY c.id
FOR UPDATE OF c;

-- name: bulk_cancel
UPDATE contacts
SET state = 'cancelled', status = 'failed', status_detail = '$cancelled',
    next_attempt_at = NULL, next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, preview_agent = NULL, preview_offered_at = NULL,
    task_due_at = NULL, closed_at = now(), updated_at = now()
WHERE id IN (SELECT id FROM bulk_selection);

-- name: bulk_recycle
-- A fresh strategy run from $1: the first action decided again when it is claimed.
UPDATE contacts
SET state = 'pending', status = 'open', status_detail = '$none', closed_at = NULL,
    next_attempt_at = $1, next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, preview_agent = NULL, preview_offered_at = NULL,
    task = NULL, task_due_at = NULL, task_key = NULL, task_pass = 1, task_passes = NULL,
    task_tries = 0, task_entered_at = NULL,
    run_started_at = now(), updated_at = now()
WHERE id IN (SELECT id FROM bulk_selection);

-- name: bulk_move_clashes
-- External ids the selection shares with contacts of campaign $1.
SELECT t.external_id FROM contacts t
JOIN contacts c ON c.external_id = t.external_id
WHERE t.campaign_id = $1 AND c.id IN (SELECT id FROM bulk_selection)
ORDER BY t.external_id
LIMIT 101;

-- name: bulk_move
-- Into campaign $1, from its strategy's start: an open contact is due at once (or when
-- it was due), its plan and agents cleared; a closed one moves as it is.
UPDATE contacts
SET campaign_id = $1,
    next_attempt_at = CASE WHEN closed_at IS NULL THEN coalesce(next_attempt_at, now()) END,
    next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, preview_agent = NULL, preview_offered_at = NULL,
    task = NULL, task_due_at = NULL, task_key = NULL, task_pass = 1, task_passes = NULL,
    task_tries = 0, task_entered_at = NULL,
    run_started_at = now(), updated_at = now()
WHERE id IN (SELECT id FROM bulk_selection);
