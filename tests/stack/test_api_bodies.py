"""Request bodies over real HTTP: content codings, right and wrong, on every route that reads one.

Every operation of the API that takes a body (from the table the routes are registered
from, so a new route is covered the day it is added) gets bodies whose Content-Encoding
does not match their data: each answer must be a JSON 4xx naming the problem, never a 500
or a bare text page. Bodies compressed as they say are read like plain ones.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialer_server.accounts import users
from dialer_server.api.app import OPERATIONS
from dialer_server.api.common import MAX_FILE_BYTES, Operation
from dialer_server.config import Config

from ..support.api_client import Api, api_config, api_server

pytestmark = pytest.mark.stack

BODY = json.dumps({"name": "x"}).encode()


@pytest.fixture
async def api(config: Config) -> AsyncIterator[Api]:
    async with api_server(api_config(config)) as client:
        await client.new_strategy()
        yield client


@pytest.fixture
async def role_tokens(pool: Any) -> dict[str, str]:
    """An API token of a user of each role the body routes are for (beside integration)."""
    tokens: dict[str, str] = {}
    async with pool.acquire() as conn:
        for role, agent in (("admin", None), ("agent", "agent24")):
            user = await users.create_user(
                conn, {"username": f"bodies-{role}", "role": role, "agent": agent}
            )
            tokens[role], _ = await users.create_token(
                conn, user["id"], kind="api", name="bodies", expires_at=None
            )
            tokens[f"{role}_user_id"] = str(user["id"])
    return tokens


def _token_for(op: Operation, tokens: dict[str, str]) -> str | None:
    """A token whose role may use ``op``: the route's checks come before its body."""
    roles = op.allowed_roles
    if "integration" in roles:
        return None  # the Api client's own
    return tokens["admin"] if "admin" in roles else tokens[roles[0]]


@pytest.fixture
async def path_values(api: Api, role_tokens: dict[str, str]) -> dict[str, str]:
    """A value for each path parameter, naming something that exists."""
    campaign = await api.new_campaign()
    await api.upload(campaign["id"], [{"external_id": "a", "phone1": "+12025550101"}])
    contacts = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts")
    # The do-not-call registry routes name it: a registry that exists needs no region.
    loaded = await api.with_token(role_tokens["admin"]).request(
        "POST",
        "/api/v1/dnc-registries/interested/load",
        data=b"2025550123\n",
        headers={"Content-Type": "text/csv"},
        params={"region": "US"},
    )
    assert loaded.status == 200, loaded.body
    return {
        "campaign_id": str(campaign["id"]),
        "contact_id": str(contacts["items"][0]["id"]),
        "name": "interested",
        "attempt_id": str(uuid.uuid4()),
        "user_id": role_tokens["agent_user_id"],
        "agent": "agent24",
    }


def _path(op: Operation, values: dict[str, str]) -> str:
    path = op.path
    for param in op.parameters:
        if param["in"] == "path":
            name = param["name"]
            assert name in values, f"give path parameter {name} of {op.operation_id} a value"
            path = path.replace("{" + name + "}", values[name])
    # Strategy routes name a strategy, the dispositions' a dictionary entry.
    return path.replace("/strategies/interested", "/strategies/simple")


def _media_type(op: Operation) -> str:
    assert op.body is not None
    types = list(op.body["content"])
    return "application/json" if "application/json" in types else "text/csv"


BODY_OPERATIONS = [op for op in OPERATIONS if op.body is not None]


def _gzip_bomb() -> bytes:
    """A few hundred KiB of gzip that decode to more than any body may be (256 MiB)."""
    out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * 2**20
    data = b"".join(out.compress(block) for _ in range(MAX_FILE_BYTES // len(block) + 1))
    return data + out.flush()


WRONG_CODINGS: list[tuple[str, str, bytes, int, str]] = [
    # (what, Content-Encoding, body, status, error code)
    ("gzip header, plain data", "gzip", BODY, 400, "bad_encoding"),
    ("deflate header, plain data", "deflate", BODY, 400, "bad_encoding"),
    ("gzip cut short", "gzip", gzip.compress(BODY)[:-12], 400, "bad_encoding"),
    ("gzip, then more data", "gzip", gzip.compress(BODY) + b"trailing", 400, "bad_encoding"),
    ("brotli (not spoken here)", "br", BODY, 415, "unsupported_encoding"),
    ("an unknown coding", "x-snappy", BODY, 415, "unsupported_encoding"),
    ("two codings", "gzip, gzip", gzip.compress(gzip.compress(BODY)), 415, "unsupported_encoding"),
    ("a gzip bomb", "gzip", b"bomb", 413, "payload_too_large"),
]
# A do-not-call registry file may be 4 GiB (dnc.MAX_REGISTRY_BYTES): a bomb below that is
# read through the same reader, and its NUL bytes are no number (422, nothing replaced).
BOMB_STATUS = {"loadDncRegistry": (422, "validation_failed")}
_BOMB: list[bytes] = []


@pytest.mark.parametrize(
    ("what", "coding", "body", "status", "code"), WRONG_CODINGS, ids=[w[0] for w in WRONG_CODINGS]
)
async def test_a_body_whose_content_coding_does_not_match_it_is_a_json_4xx_on_every_route(
    api: Api,
    path_values: dict[str, str],
    role_tokens: dict[str, str],
    what: str,
    coding: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    assert len(BODY_OPERATIONS) >= 15
    if body == b"bomb":
        _BOMB[:] = _BOMB or [_gzip_bomb()]
        body = _BOMB[0]
    for op in BODY_OPERATIONS:
        headers = {"Content-Type": _media_type(op), "Content-Encoding": coding}
        token = _token_for(op, role_tokens)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        reply = await api.request(op.method, _path(op, path_values), data=body, headers=headers)
        where = (op.operation_id, what, reply.status, reply.raw[:200])
        expected = (
            BOMB_STATUS.get(op.operation_id, (status, code))
            if what == "a gzip bomb"
            else (status, code)
        )
        assert reply.status == expected[0], where
        assert reply.headers["Content-Type"].startswith("application/json"), where
        assert reply.body["error"]["code"] == expected[1], where
        if expected[0] == 415:
            assert reply.headers.get("Accept-Encoding") == "gzip, deflate", where
    # No body of these replaced the registry the fixture loaded.
    registry = await api.with_token(role_tokens["admin"]).ok(
        "GET", "/api/v1/dnc-registries/interested"
    )
    assert registry["entries"] == 1, registry


async def test_a_multipart_form_with_a_content_coding_is_refused_as_json(
    api: Api, path_values: dict[str, str]
) -> None:
    form = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\nphone1\n2025550199\n\r\n--b--\r\n"
    )
    path = f"/api/v1/campaigns/{path_values['campaign_id']}/contacts/file"
    reply = await api.post(
        path,
        data=gzip.compress(form),
        headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Encoding": "gzip"},
    )
    assert reply.status == 415 and reply.body["error"]["code"] == "unsupported_encoding"
    # A part of a form with a coding of its own, likewise.
    part = form.replace(
        b"Content-Type: text/csv\r\n", b"Content-Type: text/csv\r\nContent-Encoding: gzip\r\n"
    )
    reply = await api.post(
        path, data=part, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert reply.status == 415 and reply.body["error"]["code"] == "unsupported_encoding"


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        # Several gzip members one after the other are one gzip body (RFC 1952).
        ("gzip", lambda data: gzip.compress(data[:7]) + gzip.compress(data[7:])),
        ("deflate", zlib.compress),
        # Raw deflate without the zlib wrapper: what some clients send as "deflate".
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),
        ("identity", lambda data: data),
        ("GZip", gzip.compress),
    ],
)
async def test_a_body_compressed_as_its_content_coding_says_is_read_like_a_plain_one(
    api: Api, path_values: dict[str, str], coding: str, encode: Any
) -> None:
    body = json.dumps({"name": f"zipped-{coding}", "strategy": "simple"}).encode()
    reply = await api.post(
        "/api/v1/campaigns",
        data=encode(body),
        headers={"Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert reply.status == 201, reply.body
    assert reply.body["name"] == f"zipped-{coding}"
    csv_body = b"phone1,external_id\n2025550102,b\n2025550103,c\n"
    reply = await api.post(
        f"/api/v1/campaigns/{path_values['campaign_id']}/contacts/file",
        data=encode(csv_body),
        headers={"Content-Type": "text/csv", "Content-Encoding": coding},
    )
    assert reply.status == 200, reply.body
    assert reply.body["inserted"] + reply.body["updated"] == 2
