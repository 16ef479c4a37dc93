-- Campaign modes and answering-machine detection. What happens once a person
-- answers: 'automated' sends the call to the dialing context ([dialer-answered]:
-- the campaign's message, or the line held), 'ivr' to [dialer-ivr] (a prompt and
-- one key read); the agent modes are 'progressive', 'power' and 'predictive'.
ALTER TABLE campaigns ADD COLUMN mode text NOT NULL DEFAULT 'automated'
    CHECK (mode IN ('automated', 'ivr', 'progressive', 'power', 'predictive'));
-- AMD() on every answered call ([dialer-amd]); a machine is the outcome 'machine'.
ALTER TABLE campaigns ADD COLUMN amd boolean NOT NULL DEFAULT false;
-- Asterisk sound names (DIALER_PLAYBACK, DIALER_MACHINE_MESSAGE): the prompt or
-- message of the campaign, and what to leave on answering machines. They go into
-- dialplan application arguments, hence no commas, spaces or line breaks; '&'
-- plays several files one after the other.
ALTER TABLE campaigns ADD COLUMN ivr_playback text
    CHECK (ivr_playback ~ '^[A-Za-z0-9_./&-]{1,255}$');
ALTER TABLE campaigns ADD COLUMN machine_message text
    CHECK (machine_message ~ '^[A-Za-z0-9_./&-]{1,255}$');

-- What our dialplan reported for an answered call: AMD's verdict (MACHINE,
-- HUMAN, NOTSURE) and the keys pressed in the IVR.
ALTER TABLE attempts ADD COLUMN amd_status text;
ALTER TABLE attempts ADD COLUMN ivr_digits text;
