"""The agent desk (/desk) and the supervisor view (/desk/supervisor): static pages.

Plain HTML, CSS and ES modules from ``api/static/``, no build step. The pages
are public (they hold no data): the scripts log in with POST /api/v1/session
and call the API with the session token, like any client.
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

from .common import Operation

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_STATIC = re.compile(r"[a-z][a-z0-9_-]{0,40}\.(js|css)")


def _read(name: str) -> tuple[bytes, str]:
    path = resources.files("dialer_server.api").joinpath("static", name)
    suffix = name[name.rindex(".") :]
    return path.read_bytes(), _TYPES[suffix]


def _page(name: str) -> web.Response:
    body, kind = _read(name)
    return web.Response(
        body=body,
        content_type=kind,
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; img-src 'self' data:",
            "X-Frame-Options": "DENY",
        },
    )


async def desk_page(request: web.Request) -> web.Response:
    return _page("desk.html")


async def supervisor_page(request: web.Request) -> web.Response:
    return _page("supervisor.html")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not _STATIC.fullmatch(name):
        raise web.HTTPNotFound()
    try:
        return _page(name)
    except FileNotFoundError:
        raise web.HTTPNotFound() from None


def _html(description: str) -> dict[str, object]:
    return {
        "200": {
            "description": description,
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    }


OPERATIONS = [
    Operation(
        "GET",
        "/desk",
        desk_page,
        "deskPage",
        "The agent desk (a web page)",
        "pages",
        responses=_html("The desk"),
        public=True,
    ),
    Operation(
        "GET",
        "/desk/supervisor",
        supervisor_page,
        "supervisorPage",
        "The supervisor view (a web page)",
        "pages",
        responses=_html("The supervisor view"),
        public=True,
    ),
    Operation(
        "GET",
        r"/desk/static/{name:[A-Za-z0-9_.-]+}",
        static_file,
        "deskStatic",
        "The pages' scripts and style sheet",
        "pages",
        parameters=(
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,40}\\.(js|css)$"},
            },
        ),
        responses={
            "200": {
                "description": "The file",
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                },
            },
            "404": {"$ref": "#/components/responses/E404"},
        },
        public=True,
    ),
]
