-- Leasing due contacts and writing their attempt rows (engine/claims.py).

-- name: lock_campaign_lines
-- NO KEY UPDATE: inserting attempts and contacts (imports) takes KEY SHARE on
-- the campaign, which must not wait for a claim.
-- Serialises claims of one campaign across daemons: max_concurrent_calls is
-- the campaign's, not a daemon's. The open calls are counted by a separate
-- statement (open_campaign_calls), run after this one got the lock: a count in
-- this statement would use a snapshot from before the wait, blind to the
-- attempts the previous lock holder just committed.
-- With it, the campaign's caller-ID pool (engine/caller_ids.py: its settings, and the
-- campaign's day, today and tomorrow's start in its time zone), NULL without one.
SELECT c.max_concurrent_calls, p.campaign_id IS NOT NULL AS has_caller_id_pool,
       p.rotation, p.daily_cap, p.local_presence,
       (now() AT TIME ZONE c.timezone)::date AS today,
       (date_trunc('day', now() AT TIME ZONE c.timezone) + interval '1 day')
           AT TIME ZONE c.timezone AS tomorrow
FROM campaigns c LEFT JOIN caller_id_pools p ON p.campaign_id = c.id
WHERE c.id = $1 AND c.state = 'running'
FOR NO KEY UPDATE OF c;

-- name: open_campaign_calls
-- The campaign's calls that hold a line: open attempts, but for those whose call the
-- claiming daemon saw hang up ($2), their results on the way (claims.py).
SELECT count(*) FROM attempts
WHERE campaign_id = $1 AND state <> 'ended' AND channel = 'call' AND NOT (id = ANY ($2::uuid[]));

-- name: lock_pbx_lines
-- Serialises the claims placing calls on the same PBXs, across daemons and
-- campaigns: a PBX's channel limit is the PBX's, not a daemon's. Transaction
-- locks ($1, hashtext(name)), taken in one global order (by key), so two claims
-- never wait for each other crosswise; released at commit, with the attempts
-- written. Their open calls are counted by a separate statement (open_pbx_calls)
-- run after this one: a new snapshot, with what the previous holder committed.
SELECT pg_advisory_xact_lock($1, key)
FROM (SELECT DISTINCT hashtext(name) AS key FROM unnest($2::text[]) AS name ORDER BY key) AS k;

-- name: open_pbx_calls
-- As open_campaign_calls, per PBX.
SELECT pbx, count(*) AS calls FROM attempts
WHERE state <> 'ended' AND channel = 'call' AND pbx = ANY ($1::text[])
  AND NOT (id = ANY ($2::uuid[]))
GROUP BY pbx;

-- name: claim_due_contacts
-- The one way work is leased: due contacts, oldest first, skipping rows another
-- daemon holds. Locked, not written: the claim writes each of them before it commits
-- (claims.py), and the lock keeps every other claim off them until then: dialled
-- (insert_engine_attempts unplans it: no other daemon claims it again until its
-- attempt has a result), planned again or closed, unplanned while its open attempt's
-- result is on the way (unplan_contact), or left as it was (put back).
-- A personal callback, or a preview contact an agent called, waits for its agent
-- ($4: the agents free now): filtered before the LIMIT, so a callback whose
-- agent stays busy never holds up others. A preview campaign ($5) dials only
-- those: its other contacts wait to be shown to an agent. "No agent" is said with the
-- columns themselves, not coalesce(): the planner knows how many rows have none from
-- their statistics, and so walks the due index in order and stops at the LIMIT, instead
-- of reading (and sorting) every due contact of the campaign.
SELECT c.*, c.next_attempt_at AS due_at,
       -- Its result plans what comes next (claims.py): no new attempt now.
       EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.state <> 'ended')
           AS has_open_attempt
FROM contacts c
WHERE c.campaign_id = $1 AND c.next_attempt_at IS NOT NULL AND c.next_attempt_at <= $3
  AND ((c.callback_agent IS NULL AND c.preview_agent IS NULL)
       OR coalesce(c.callback_agent, c.preview_agent) = ANY ($4::text[]))
  AND (NOT $5 OR c.callback_agent IS NOT NULL OR c.preview_agent IS NOT NULL)
ORDER BY c.next_attempt_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: unplan_contact
-- A claimed contact with an attempt still open: nothing is due until its result.
UPDATE contacts SET next_attempt_at = NULL, updated_at = now() WHERE id = $1;

-- name: do_not_call_numbers
-- Which of the claim's numbers ($1) the lists hold (global, the campaign's $2), or a
-- national registry (migration 0015): one statement for the whole claim, and for each
-- number an index probe in each list and registry partition, whatever their size
-- (OFFSET 0 keeps each EXISTS a probe: the planner would otherwise hash a whole list
-- when it thinks it small). An expired registry entry stops nothing.
SELECT n.number FROM unnest($1::text[]) AS n(number)
WHERE EXISTS (
    SELECT 1 FROM dnc_numbers d
    WHERE d.number = n.number AND (d.campaign_id IS NULL OR d.campaign_id = $2)
    OFFSET 0
) OR EXISTS (
    SELECT 1 FROM dnc_registry_numbers r
    WHERE r.number = n.number AND (r.expires_at IS NULL OR r.expires_at > now())
    OFFSET 0
);

-- name: insert_engine_attempts
-- The claim's attempt rows, and their contacts marked dialling: one statement for all
-- (one array element per attempt). clock_timestamp(), not now(): a claim may wait for
-- another daemon's lock, and the attempt exists from when it is written, not from
-- when we waited. A call that goes out as soon as the claim commits ($10) is written
-- sent, at that same time (claims.py). A preview contact is no longer shown to its
-- agent once dialled.
WITH inserted AS (
    INSERT INTO attempts (campaign_id, instance_id, contact_id, channel, phone_slot, number,
                          step, pbx, caller_id, state, sent_at, created_at)
    SELECT $1, $2, j.contact_id, j.channel, j.phone_slot, j.number, j.step, j.pbx, j.caller_id,
           CASE WHEN j.sent THEN 'sent' ELSE 'created' END, CASE WHEN j.sent THEN j.at END, j.at
    -- The time read once per row (a volatile column keeps the subquery apart): each
    -- attempt is created, in the claim's order, and sent at one instant.
    FROM (SELECT *, clock_timestamp() AS at
          FROM unnest($3::bigint[], $4::text[], $5::smallint[], $6::text[], $7::smallint[],
                      $8::text[], $9::text[], $10::boolean[])
              AS j(contact_id, channel, phone_slot, number, step, pbx, caller_id, sent)) AS j
    RETURNING contact_id, id
), dialling AS (
    UPDATE contacts
    SET state = 'sent_to_dialer', next_attempt_at = NULL, next_step = NULL,
        next_channel = NULL, next_phone_slot = NULL, preview_agent = NULL,
        preview_offered_at = NULL, updated_at = now()
    WHERE id = ANY ($3::bigint[])
)
SELECT contact_id, id FROM inserted;

-- name: release_preview
-- A preview contact not dialled now (window closed, do-not-call): no longer its agent's.
UPDATE contacts SET preview_agent = NULL, preview_offered_at = NULL WHERE id = $1;

-- name: put_back_contact
-- A contact whose attempt never went out (reconciliation): due at once, on the
-- step it was claimed for, unless something closed it meanwhile.
UPDATE contacts
SET next_attempt_at = now(), next_step = $2, next_channel = $3, next_phone_slot = $4,
    updated_at = now()
WHERE id = $1 AND closed_at IS NULL;
