-- Every daemon sees every AMI event, so each one used to store the same inbound
-- SMS. message_id identifies the SIP MESSAGE ([dialer-sms-in] passes its Call-ID
-- and CSeq): the first daemon to store it wins, the others insert nothing
-- (ON CONFLICT DO NOTHING) and leave the contact alone. NULL (a reply without
-- one) never conflicts.
ALTER TABLE sms_inbound ADD COLUMN message_id text;
ALTER TABLE sms_inbound ADD CONSTRAINT sms_inbound_message_id_key UNIQUE (message_id);
