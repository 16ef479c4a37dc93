-- Setting the disposition of an answered call (campaigns/dispositions.py).

-- name: lock_attempt
SELECT * FROM attempts WHERE id = $1 FOR UPDATE;

-- name: attempt_disposition_exists
SELECT EXISTS (SELECT 1 FROM attempt_dispositions WHERE attempt_id = $1);

-- name: latest_attempt_of_contact
SELECT id FROM attempts WHERE contact_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1;

-- name: campaign_disposition
SELECT * FROM dispositions WHERE campaign_id = $1 AND name = $2;

-- name: insert_attempt_disposition
INSERT INTO attempt_dispositions (attempt_id, campaign_id, contact_id, disposition_id, name,
                                  action, agent, callback_at, note, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: get_attempt_disposition
SELECT ad.attempt_id, ad.campaign_id, ad.contact_id, ad.name, d.label, ad.action, ad.agent,
       ad.callback_at, ad.note, ad.created_at, ad.applied_at
FROM attempt_dispositions ad JOIN dispositions d ON d.id = ad.disposition_id
WHERE ad.attempt_id = $1;
