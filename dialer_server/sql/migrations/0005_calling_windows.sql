-- Calling windows: allowed hours per weekday in the contact's local time,
-- blackout dates and the zone for contacts whose zone is unknown
-- (dialer_server/calling_window.py reads it). NULL: every day 08:00-21:00,
-- the hours most regulations allow.
ALTER TABLE campaigns ADD COLUMN calling_window jsonb;
