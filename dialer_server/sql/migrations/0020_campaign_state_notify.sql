-- A campaign's state change wakes the daemons at once (issue 12). Each daemon read the
-- running campaigns at its tick's cadence: a campaign started (or resumed) waited up to
-- a tick for its first calls, and one paused dialled until the next read (its claims
-- always re-check the state under the campaign's lock). The engine LISTENs on
-- dialer_campaigns (db/listen.py) and reads them again when told; it still reads them
-- at its cadence, so a notification lost while a session was down costs a tick.
CREATE FUNCTION campaign_state_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Delivered at commit, once per transaction whatever the number of campaigns.
    PERFORM pg_notify('dialer_campaigns', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER campaigns_state_notify AFTER UPDATE OF state ON campaigns
FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION campaign_state_notify();
