"""JSON Schemas of the API's bodies, used both to validate requests and in /openapi.json.

One definition per shape, so the document cannot drift from what is checked: one
module per resource (its request bodies, its responses and their COMPONENTS),
``common.py`` for what they share. Request schemas are self-contained (no $ref):
they are validated as they are. Response schemas live under components and are
referenced by name.
"""

from __future__ import annotations

from . import (
    attempts,
    bulk,
    caller_ids,
    campaigns,
    common,
    contacts,
    dispositions,
    dnc,
    flows,
    hooks,
    persons,
    recordings,
    strategies,
    users,
)

COMPONENTS: dict[str, common.Schema] = {
    "Error": common.ERROR,
    **campaigns.COMPONENTS,
    **hooks.COMPONENTS,
    **caller_ids.COMPONENTS,
    **attempts.COMPONENTS,
    **bulk.COMPONENTS,
    **strategies.COMPONENTS,
    **flows.COMPONENTS,
    **contacts.COMPONENTS,
    **dnc.COMPONENTS,
    **persons.COMPONENTS,
    **recordings.COMPONENTS,
    **dispositions.COMPONENTS,
    **users.COMPONENTS,
}
