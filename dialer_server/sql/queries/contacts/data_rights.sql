-- Data rights (contacts/data_rights.py): a person's contacts across every campaign, what is
-- held about them, and their erasure.

-- name: person_contacts
-- The contacts with one of the numbers $1 (any phone slot: contacts_phones_idx) or the
-- external id $2 (in every campaign: the (campaign_id, external_id) index, campaign by
-- campaign); erased ones no longer have either.
SELECT c.*, g.name AS campaign_name
FROM contacts c JOIN campaigns g ON g.id = c.campaign_id
WHERE c.id IN (
    SELECT id FROM contacts
    WHERE ARRAY[phone1, phone2, phone3, phone4, phone5]::text[] && $1::text[]
    UNION
    SELECT k.id FROM campaigns x JOIN contacts k ON k.campaign_id = x.id AND k.external_id = $2
)
ORDER BY c.id
LIMIT $3;

-- name: lock_person_contacts
-- person_contacts, locked until the erasure commits.
SELECT c.*, g.name AS campaign_name
FROM contacts c JOIN campaigns g ON g.id = c.campaign_id
WHERE c.id IN (
    SELECT id FROM contacts
    WHERE ARRAY[phone1, phone2, phone3, phone4, phone5]::text[] && $1::text[]
    UNION
    SELECT k.id FROM campaigns x JOIN contacts k ON k.campaign_id = x.id AND k.external_id = $2
)
ORDER BY c.id
LIMIT $3
FOR UPDATE OF c;

-- name: person_attempts
SELECT a.*, ad.name AS disposition, ad.agent AS disposition_agent, ad.note AS disposition_note,
       ad.callback_at AS disposition_callback_at
FROM attempts a LEFT JOIN attempt_dispositions ad ON ad.attempt_id = a.id
WHERE a.contact_id = ANY ($1::bigint[])
ORDER BY a.created_at, a.id;

-- name: person_task_runs
-- Their flow task log (emails, webhooks, exports... run for them).
SELECT id, campaign_id, contact_id, task, task_type, pass, try, state, status, status_detail,
       started_at, ended_at, error, moved_to
FROM task_runs WHERE contact_id = ANY ($1::bigint[])
ORDER BY id;

-- name: person_export_rows
-- Their rows in the flows' export files.
SELECT campaign_id, task, day, contact_id, row, created_at FROM task_export_rows
WHERE contact_id = ANY ($1::bigint[])
ORDER BY seq;

-- name: person_sms
SELECT id, number, body, received_at, contact_id FROM sms_inbound
WHERE contact_id = ANY ($1::bigint[]) OR number = ANY ($2::text[])
ORDER BY received_at, id;

-- name: person_dnc
SELECT 'list' AS kind, number, campaign_id, NULL AS registry, reason, created_at,
       NULL::timestamptz AS expires_at
FROM dnc_numbers WHERE number = ANY ($1::text[])
UNION ALL
SELECT 'registry', r.number, NULL, g.name, NULL, g.loaded_at, r.expires_at
FROM dnc_registry_numbers r JOIN dnc_registries g ON g.id = r.registry_id
WHERE r.number = ANY ($1::text[])
ORDER BY 2, 1;

-- name: person_audit
-- The audit log's rows about their contacts and their calls (a change's before and after
-- hold the contact's data).
SELECT id, at, username, role, via, action, target_type, target_id, before, after
FROM audit_log
WHERE (target_type = 'contact' AND target_id = ANY (SELECT id::text FROM unnest($1::bigint[]) AS id))
   OR (target_type = 'attempt' AND target_id = ANY (
           SELECT id::text FROM attempts WHERE contact_id = ANY ($1::bigint[])))
ORDER BY id;

-- name: erase_person_audit
-- The audit log keeps who did what when to their contacts and calls, not what the rows held.
UPDATE audit_log
SET before = CASE WHEN before IS NOT NULL THEN '{"erased": true}'::jsonb END,
    after = CASE WHEN after IS NOT NULL THEN '{"erased": true}'::jsonb END
WHERE (target_type = 'contact' AND target_id = ANY (SELECT id::text FROM unnest($1::bigint[]) AS id))
   OR (target_type = 'attempt' AND target_id = ANY (
           SELECT id::text FROM attempts WHERE contact_id = ANY ($1::bigint[])));

-- name: person_in_call
SELECT EXISTS (SELECT 1 FROM attempts WHERE contact_id = ANY ($1::bigint[]) AND state <> 'ended');

-- name: person_recordings
-- Every answered call may have a recording (stored, missing, or not found yet).
SELECT id FROM attempts
WHERE contact_id = ANY ($1::bigint[]) AND channel = 'call' AND answered_at IS NOT NULL
  AND recording_status IS DISTINCT FROM 'deleted';

-- name: erase_person_outbox
-- Their webhook events, delivered or not (they carry their numbers and ids).
DELETE FROM webhook_outbox
WHERE ordering_key = ANY (SELECT 'contact:' || id FROM unnest($1::bigint[]) AS id);

-- name: erase_person_events
DELETE FROM events WHERE payload #>> '{contact,id}' = ANY ($1::text[]);

-- name: erase_person_sms
DELETE FROM sms_inbound WHERE contact_id = ANY ($1::bigint[]) OR number = ANY ($2::text[]);

-- name: erase_person_dispositions
UPDATE attempt_dispositions SET note = NULL
WHERE contact_id = ANY ($1::bigint[]) AND note IS NOT NULL;

-- name: erase_person_attempts
-- What statistics need stays (outcome, times, causes, agent, caller ID); the rest goes.
UPDATE attempts
SET number = NULL, detail = NULL, ivr_digits = NULL, recording_path = NULL,
    -- 'deleted' for every answered call, so that no recording is noted afterwards.
    recording_status = CASE WHEN recording_status IS NOT NULL OR answered_at IS NOT NULL
                            THEN 'deleted' END,
    recording_deleted_at = CASE WHEN recording_status IS DISTINCT FROM 'deleted'
                                     AND (recording_status IS NOT NULL OR answered_at IS NOT NULL)
                                THEN now() ELSE recording_deleted_at END
WHERE contact_id = ANY ($1::bigint[]);

-- name: erase_person_export_rows
-- Their rows in the flows' export files: gone, and each file they were in marked to be
-- written again (written_rows -1, below any count) by the export sweep.
WITH gone AS (
    DELETE FROM task_export_rows WHERE contact_id = ANY ($1::bigint[])
    RETURNING campaign_id, task, day
)
UPDATE task_export_files f SET rows = f.rows - g.n, written_rows = -1
FROM (SELECT campaign_id, task, day, count(*) AS n FROM gone GROUP BY 1, 2, 3) g
WHERE f.campaign_id = g.campaign_id AND f.task = g.task AND f.day = g.day;

-- name: erase_person_task_errors
-- A flow task's error may quote them (a mail server's "no such user <address>").
UPDATE task_runs SET error = NULL WHERE contact_id = ANY ($1::bigint[]) AND error IS NOT NULL;

-- name: erase_person_contacts
UPDATE contacts
SET external_id = NULL, phone1 = NULL, phone2 = NULL, phone3 = NULL, phone4 = NULL,
    phone5 = NULL, param1 = NULL, param2 = NULL, param3 = NULL, param4 = NULL, param5 = NULL,
    param6 = NULL, param7 = NULL, param8 = NULL, param9 = NULL, param10 = NULL,
    param11 = NULL, param12 = NULL, timezone = NULL,
    state = 'cancelled', status = 'failed', status_detail = '$erased',
    next_attempt_at = NULL, next_step = NULL, next_channel = NULL, next_phone_slot = NULL,
    callback_agent = NULL, preview_agent = NULL, preview_offered_at = NULL, task_due_at = NULL,
    closed_at = coalesce(closed_at, now()), erased_at = now(), updated_at = now()
WHERE id = ANY ($1::bigint[]);

-- name: insert_erased_numbers
INSERT INTO erased_numbers (number_hash) SELECT unnest($1::bytea[])
ON CONFLICT (number_hash) DO NOTHING;

-- name: privacy_key_check
SELECT key_check FROM privacy_key;

-- name: set_privacy_key_check
INSERT INTO privacy_key (key_check) VALUES ($1) ON CONFLICT (id) DO NOTHING;

-- name: erased_number_hashes
SELECT number_hash FROM erased_numbers WHERE number_hash = ANY ($1::bytea[]);
