"""Users and roles, their passwords and API tokens, and the audit log of every write."""
