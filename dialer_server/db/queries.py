"""Named SQL: each module runs the queries of its own file, and only those.

The queries of ``dialer_server.<package>.<module>`` live in
``sql/queries/<package>/<module>.sql`` (``dialer_server.webhooks``:
``sql/queries/webhooks.sql``), as blocks headed ``-- name: <query>``. A module
binds its own file once, ``query = queries_of(__name__)``, and runs
``query("claim_due_contacts")``; a name its file does not define is a KeyError
naming the file. So the SQL a module runs is read beside it, and a query another
module needs is reached through a function of the module that owns it, never by
name. Each file is read once, on first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from importlib import resources
from importlib.abc import Traversable

PACKAGE = "dialer_server"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name: x`` blocks into {name: sql}."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name} is defined twice")
        queries[name] = body.strip()
    return queries


def query_file(module: str) -> Traversable:
    """The SQL file of ``module`` (a dotted name under dialer_server)."""
    if not module.startswith(PACKAGE + "."):
        raise ValueError(f"{module} is not a module of {PACKAGE}")
    path = resources.files(PACKAGE).joinpath("sql", "queries")
    *packages, name = module.removeprefix(PACKAGE + ".").split(".")
    for part in packages:
        path = path.joinpath(part)
    return path.joinpath(f"{name}.sql")


@functools.cache
def module_queries(module: str) -> dict[str, str]:
    """Every named query of ``module``'s file."""
    return load_queries(query_file(module).read_text())


def queries_of(module: str) -> Callable[[str], str]:
    """``query(name)`` for the queries of ``module`` (pass ``__name__``)."""

    def query(name: str) -> str:
        queries = module_queries(module)
        try:
            return queries[name]
        except KeyError:
            raise KeyError(f"no query {name!r} in {query_file(module)}") from None

    return query


def query_files() -> dict[str, Traversable]:
    """Every query file shipped, by the module that owns it."""
    root = resources.files(PACKAGE).joinpath("sql", "queries")
    found: dict[str, Traversable] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}.")
            elif entry.name.endswith(".sql"):
                found[f"{PACKAGE}.{prefix}{entry.name.removesuffix('.sql')}"] = entry

    walk(root, "")
    return found
