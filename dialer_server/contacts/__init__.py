"""Contacts: reading and changing them, and importing them in bulk (rows, phones,
files, the drop folder)."""
