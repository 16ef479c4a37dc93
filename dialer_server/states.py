"""The states a contact, a campaign and an attempt can be in, defined once.

The schema's CHECK constraints list the same values (a test compares them with
a migrated database), and the API, the metrics and the strategies take them
from here.

A contact (seed 004) is ``pending`` until the engine claims it, then
``sent_to_dialer`` while an attempt of it is open; it ends in one of the final
states, each with a ``status`` (seeds 000, 001: ``open``, ``success``,
``declined``, ``failed``) and a ``status_detail`` (a predefined ``$...`` detail
or the campaign's own). ``sms_sent`` is final but still open to a reply, which
turns it into ``sms_responded``. In a campaign with a task flow, a contact's
status is that of its current task, and a contact that goes on to tasks after
its call keeps the call's final state while it is open again (``closed_at`` is
NULL until its flow ends: openness is ``closed_at``, not the state).
"""

from __future__ import annotations

CONTACT_OPEN_STATES = ("pending", "sent_to_dialer")
# Every state, in the order a contact goes through them (and the schema lists them).
CONTACT_STATES = (
    *CONTACT_OPEN_STATES,
    "connected",
    "not_connected",
    "retries_completed",
    "dnc_listed",
    "sms_sent",
    "sms_sent_closed",
    "sms_responded",
    "dangling",
    "cancelled",
)
CONTACT_FINAL_STATES = frozenset(CONTACT_STATES) - frozenset(CONTACT_OPEN_STATES)
# The states a campaign's SMS step may close its contact with.
SMS_CLOSE_STATES = ("sms_sent", "sms_sent_closed")

STATUSES = ("open", "success", "declined", "failed")
# The status details the system itself gives (seed 001); campaigns add their own.
PREDEFINED_DETAILS = (
    "$none",
    "$follow_up_auto",
    "$follow_up_personal",
    "$assigned",
    "$wrong_number",
    "$do_not_call",
    "$unavailable",
    "$cancelled",
    "$skipped",
    "$error",
    "$duplicate",
    "$invalid_contact",
    "$locked_number",
    # Data rights: the person asked to be forgotten (contacts/data_rights.py).
    "$erased",
)

CAMPAIGN_STATES = ("stopped", "running", "paused", "completed")

# An attempt's row is written (created) before its Originate, is sent once
# Asterisk has the Originate, answered once someone picks up, ended with a result.
ATTEMPT_STATES = ("created", "sent", "answered", "ended")
