-- Sound names are names, never paths: Asterisk reads them under its sounds
-- folder, so "../../etc/passwd" or "/etc/passwd" would leave it. A name is
-- segments of letters, digits, _ and - (dots only between them) joined by /,
-- and & joins several names; 1-255 characters in all. The pattern is
-- campaigns/operations.py's SOUND_PATTERN, character for character.
--
-- A stored value that is not such a name could only ever point outside the
-- sounds folder: it is cleared (the dialplan's own sound plays instead).
UPDATE campaigns SET ivr_playback = NULL
WHERE ivr_playback !~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$';
UPDATE campaigns SET machine_message = NULL
WHERE machine_message !~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$';
UPDATE campaigns SET abandon_message = NULL
WHERE abandon_message !~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$';

ALTER TABLE campaigns DROP CONSTRAINT campaigns_ivr_playback_check,
    ADD CONSTRAINT campaigns_ivr_playback_check CHECK (ivr_playback ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$');
ALTER TABLE campaigns DROP CONSTRAINT campaigns_machine_message_check,
    ADD CONSTRAINT campaigns_machine_message_check CHECK (machine_message ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$');
ALTER TABLE campaigns DROP CONSTRAINT campaigns_abandon_message_check,
    ADD CONSTRAINT campaigns_abandon_message_check CHECK (abandon_message ~ '^(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*(&[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*)*$');
