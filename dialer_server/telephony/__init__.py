"""Asterisk: the AMI connection, placing a call and following it to its outcome, SMS,
and the roster of a queue's agents. Knows nothing of campaigns or the database."""
