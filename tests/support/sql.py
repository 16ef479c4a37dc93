"""The package's named queries by name alone, for tests that run a statement directly.

The package itself never does this: each module runs only its own file's queries
(dialer_server/db/queries.py). Query names are unique across the files (a unit
test checks it), so a name finds its one owner.
"""

from __future__ import annotations

import functools

from dialer_server.db.queries import module_queries, query_files


@functools.cache
def _owners() -> dict[str, str]:
    return {name: module for module in query_files() for name in module_queries(module)}


# The one-row forms of the claim's statements (engine/claims.sql writes every attempt
# of a claim with one statement): the state a claim leaves before its call is marked
# sent, for the tests that stage one (a daemon that died before its Originate).
STAGING = {
    "insert_engine_attempt": """
        INSERT INTO attempts (campaign_id, contact_id, channel, phone_slot, number, step,
                              instance_id, pbx, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp())
        RETURNING id""",
    "mark_contact_dialling": """
        UPDATE contacts
        SET state = 'sent_to_dialer', next_attempt_at = NULL, next_step = NULL,
            next_channel = NULL, next_phone_slot = NULL, preview_agent = NULL,
            preview_offered_at = NULL, updated_at = now()
        WHERE id = $1""",
}


def sql(name: str) -> str:
    if name in STAGING:
        return STAGING[name]
    return module_queries(_owners()[name])[name]
