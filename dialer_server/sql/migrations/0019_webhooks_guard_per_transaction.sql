-- The webhook triggers' guard asked once per transaction (issue 12). Every attempt's end
-- and every contact's close fire a trigger that first asks webhooks_enabled(): three
-- lookups, twice per call, whose answer is the same for every row of a batch of
-- results. The first call of a transaction now keeps its answer in a transaction-local
-- setting, which the others read: a settings change committed while a transaction runs
-- applies from the next transaction, as if that one had run a moment earlier.
CREATE OR REPLACE FUNCTION webhooks_enabled() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_known   text := current_setting('dialer.webhooks_enabled', true);
    v_enabled boolean;
BEGIN
    IF v_known = 'on' THEN
        RETURN true;
    ELSIF v_known = 'off' THEN
        RETURN false;
    END IF;
    v_enabled := coalesce((SELECT enabled FROM webhook_settings), false) OR events_wanted()
        OR EXISTS (SELECT 1 FROM campaign_webhooks);
    PERFORM set_config('dialer.webhooks_enabled', CASE WHEN v_enabled THEN 'on' ELSE 'off' END,
                       true);
    RETURN v_enabled;
END
$$;
