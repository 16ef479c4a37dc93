"""Import reports: /api/v1/imports/{id}/report, every problem of an import's rejected rows."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..contacts import import_reports
from ..errors import NotFound
from .common import CONTEXT, Operation, path_id, transaction
from .schemas import common as s


async def import_report(request: web.Request) -> web.StreamResponse:
    import_id = path_id(request, "import_id")
    async with transaction(request) as conn:
        if await import_reports.get(conn, import_id) is None:
            days = request.app[CONTEXT].config.import_.report_days
            raise NotFound(
                f"no report of import {import_id}: a report is kept {days:g} days "
                "(import.report_days) and goes with its campaign"
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="import-{import_id}-report.csv"',
            }
        )
        await response.prepare(request)
        await response.write(import_reports.csv_lines((), header=True))
        async for page in import_reports.problems(conn, import_id):
            # A page is 10,000 lines: formatted off the loop.
            await response.write(await asyncio.to_thread(import_reports.csv_lines, page))
    await response.write_eof()
    return response


OPERATIONS = [
    Operation(
        "GET",
        r"/api/v1/imports/{import_id:\d+}/report",
        import_report,
        "getImportReport",
        "Every problem of an import's rejected rows, as CSV",
        "contacts",
        parameters=(s.path_param("import_id", s.ID),),
        responses={
            "200": {
                "description": "The report (columns: row, field, reason), in row order: the "
                "first 1,000,000 problems of the import",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            **s.errors("401", "404", "503"),
        },
        description="Every import (JSON rows, a file, the CLI, the drop folder) has a report, "
        "named by the import_id of its answer. Reports are kept import.report_days (7 by "
        "default), and deleted with their campaign.",
    ),
]
