-- A pool of PBXs (issue 13): several Asterisk servers behind one database.
--
-- Each call attempt records the PBX it was placed on (config [[pbx]] name), so that
-- its PBX's channel limit is counted across every daemon (the claim counts the open
-- calls per PBX, attempts_open_pbx_idx) and reconciliation asks that PBX, and no
-- other, whether the call still exists. NULL: an SMS, or a call placed before the
-- pool (reconciled against the daemon's first PBX).
ALTER TABLE attempts ADD COLUMN pbx text;
CREATE INDEX attempts_open_pbx_idx ON attempts (pbx) WHERE state <> 'ended';

-- The PBXs a campaign may use, by name; NULL: every PBX of the dialling daemon.
ALTER TABLE campaigns ADD COLUMN pbxs text[]
    CHECK (cardinality(pbxs) BETWEEN 1 AND 64
           AND array_to_string(pbxs, ',') ~ '^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64})*$');

-- The PBXs each daemon dials through: an orphaned attempt is taken over by a live
-- daemon that has its PBX, or, when none has, by any (which settles it unseen).
ALTER TABLE dialer_instances ADD COLUMN pbxs text[] NOT NULL DEFAULT '{}';
