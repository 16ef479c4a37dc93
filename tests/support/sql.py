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


def sql(name: str) -> str:
    return module_queries(_owners()[name])[name]
