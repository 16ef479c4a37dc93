"""What every handler module shares: the operation table, the request context,
reading and validating requests, writing JSON."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import jsonschema
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..accounts import audit
from ..accounts.roles import READERS, WRITERS, Principal, check_roles, writes
from ..campaigns import export, xlsx
from ..config import ApiToken, Config
from ..db.outage import Outage
from ..errors import InvalidInput, RequestError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Bodies: JSON up to 1 MiB (a batch of contacts: see contacts.MAX_BATCH_BYTES), files up
# to 256 MiB (spooled to a temporary file, never held whole).
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_ID = 2**63 - 1
_MAX_MESSAGE = 300


@dataclasses.dataclass(frozen=True)
class Operation:
    """One route: what aiohttp serves and what /openapi.json says of it.

    ``route`` is the aiohttp path (its parameters may carry a regex); the
    document shows it without the regex.
    """

    method: str
    route: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    parameters: Sequence[Mapping[str, Any]] = ()
    body: Mapping[str, Any] | None = None
    responses: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    public: bool = False
    description: str = ""
    # The roles that may use it (accounts/roles.py); empty: readers for a GET,
    # writers for a change. Anyone else gets 403.
    roles: tuple[str, ...] = ()
    # Logging out: a read-only user may end their own session, and nothing else.
    own_session: bool = False

    def __post_init__(self) -> None:
        if not self.public:
            check_roles(self.allowed_roles, self.method, own_session=self.own_session)

    @property
    def path(self) -> str:
        return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", self.route)

    @property
    def allowed_roles(self) -> tuple[str, ...]:
        if self.roles:
            return self.roles
        return WRITERS if writes(self.method) else READERS


@dataclasses.dataclass(frozen=True)
class ApiContext:
    pool: Any
    tokens: tuple[ApiToken, ...]
    config: Config
    # The daemon's view of PostgreSQL's availability (db/outage.py).
    outage: Outage = dataclasses.field(default_factory=Outage)


CONTEXT = web.AppKey("api_context", ApiContext)
# Who makes the request (auth.py), and what it changed, for the audit log.
PRINCIPAL = web.RequestKey("principal", Principal)
AUDIT = web.RequestKey("audit_entry", audit.Entry)
_AUDITED = web.RequestKey("audited", bool)


class PayloadTooLarge(RequestError):
    """The request body is too large."""

    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    """The request body's content type is not accepted here."""

    code = "unsupported_media_type"


class ServiceUnavailable(RequestError):
    """A service the request needs (Asterisk, the event stream) is not available now."""

    code = "unavailable"


class BadRequest(RequestError):
    """The request is malformed."""

    code = "bad_request"


class BadEncoding(RequestError):
    """The body is not what its Content-Encoding says it is."""

    code = "bad_encoding"


class UnsupportedEncoding(RequestError):
    """The body's content coding is not one the API reads."""

    code = "unsupported_encoding"


@contextlib.asynccontextmanager
async def transaction(request: web.Request) -> AsyncIterator[Any]:
    """A connection in a transaction: a request happens whole or not at all.

    A change's audit log row is written in the same transaction, at its end,
    once per request: when the transaction wrote anything (PostgreSQL gave it a
    transaction id), or when the handler said what it did (``note``).
    """
    async with request.app[CONTEXT].pool.acquire() as conn, conn.transaction():
        yield conn
        await _audit(request, conn)


def note(
    request: web.Request,
    target_type: str | None = None,
    target_id: Any = None,
    *,
    before: Any = None,
    after: Any = None,
) -> None:
    """What this request changes, for its audit log row (written at commit)."""
    entry = request.get(AUDIT) or audit.Entry(action=_operation_id(request))
    entry.target_type = target_type
    entry.target_id = None if target_id is None else str(target_id)
    entry.before, entry.after = before, after
    request[AUDIT] = entry


def nothing_changed(request: web.Request) -> None:
    """This write changed nothing (an idempotent repeat): no audit log row. Needed
    where the transaction locked rows, which counts as writing to PostgreSQL."""
    request[_AUDITED] = True


def _operation_id(request: web.Request) -> str:
    route = request.match_info.route
    return (route.name if route is not None else None) or request.path


async def _audit(request: web.Request, conn: Any) -> None:
    principal = request.get(PRINCIPAL)
    if principal is None or not writes(request.method) or request.get(_AUDITED):
        return
    entry = request.get(AUDIT)
    if entry is None:
        if not await audit.transaction_wrote(conn):
            return  # nothing written (an idempotent no-op, a read before the change)
        entry = audit.Entry(action=_operation_id(request))
        ids = dict(request.match_info)
        if ids:
            key = sorted(ids)[-1]
            entry.target_type, entry.target_id = key.removesuffix("_id"), ids[key]
    await audit.write(
        conn,
        principal,
        via="desk" if principal.session else "api",
        method=request.method,
        path=request.path,
        entry=entry,
    )
    request[_AUDITED] = True


# --- responses -------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_dumps = functools.partial(json.dumps, default=_default)


def respond(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def json_text(data: Any) -> str:
    """``data`` as JSON text, with the API's own types (times, decimals, UUIDs)."""
    return _dumps(data)


async def stream_table(
    request: web.Request,
    *,
    fmt: str,
    filename: str,
    sheet: str,
    columns: Sequence[str],
    free_text: frozenset[str],
    batches: AsyncIterator[Sequence[Mapping[str, Any]]],
) -> web.StreamResponse:
    """A table file (CSV or XLSX) written to the client as its rows come, a batch at a
    time: formatted off the event loop, sent before the next batch is read (a slow
    client slows the reading, never grows memory). Call it once nothing can fail with a
    JSON error any more: the status line goes out with the first bytes."""
    media = export.XLSX_MEDIA_TYPE if fmt == "xlsx" else export.CSV_MEDIA_TYPE
    response = web.StreamResponse(
        headers={
            "Content-Type": media,
            "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
        }
    )
    await response.prepare(request)
    if fmt == "xlsx":
        workbook = xlsx.XlsxStream(sheet, columns)
        async for batch in batches:
            values = await asyncio.to_thread(export.xlsx_values, columns, batch)
            await response.write(await asyncio.to_thread(workbook.rows, values))
        await response.write(await asyncio.to_thread(workbook.close))
    else:
        await response.write(export.table_csv(columns, free_text, (), header=True))
        async for batch in batches:
            await response.write(
                await asyncio.to_thread(export.table_csv, columns, free_text, batch)
            )
    await response.write_eof()
    return response


# --- path and query parameters ---------------------------------------------------


def path_id(request: web.Request, name: str) -> int:
    """An integer id from the path (its route allows digits only): too large is 404."""
    value = int(request.match_info[name])
    if not 1 <= value <= MAX_ID:
        raise web.HTTPNotFound()
    return value


def path_text(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    check_text(value, name)
    return value


def check_text(value: str, field: str) -> None:
    """Text PostgreSQL can store: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise InvalidInput(
            f"{field} must not contain NUL characters",
            details=[{"field": field, "message": "NUL character"}],
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{field} is not valid Unicode text",
            details=[{"field": field, "message": "invalid text"}],
        ) from None


def query_text(
    request: web.Request,
    name: str,
    *,
    choices: Sequence[str] | None = None,
    max_len: int = 100,
    pattern: str | None = None,
) -> str | None:
    """The one value of query parameter ``name``, or None; InvalidInput when it is given
    twice, holds text PostgreSQL cannot store, is longer than ``max_len``, is not one of
    ``choices`` or does not match ``pattern`` (read as the parameter's JSON Schema reads
    it: give the pattern the operation documents)."""
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(f"query parameter {name} is given more than once", details=[_f(name)])
    value = values[0]
    check_text(value, name)
    if len(value) > max_len:
        raise InvalidInput(
            f"query parameter {name} must be at most {max_len} characters", details=[_f(name)]
        )
    if choices is not None and value not in choices:
        raise InvalidInput(
            f"query parameter {name} must be one of {', '.join(choices)}, got {value!r}",
            details=[_f(name)],
        )
    if pattern is not None and not _ecma_regex(pattern).search(value):
        raise InvalidInput(
            f"query parameter {name} must match {pattern}, got {value[:40]!r}", details=[_f(name)]
        )
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = query_text(request, name, max_len=25)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", text) or not low <= int(text) <= high:
        raise InvalidInput(
            f"query parameter {name} must be an integer from {low} to {high}", details=[_f(name)]
        )
    return int(text)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    text = query_text(request, name, choices=("true", "false", "1", "0"))
    if text is None:
        return default
    return text in ("true", "1")


def page(request: web.Request) -> tuple[int, int]:
    """(after, limit) of a keyset-paginated list."""
    after = query_int(request, "after", 0, 0, MAX_ID)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    return after, limit


def paged(items: list[dict[str, Any]], limit: int, key: str = "id") -> dict[str, Any]:
    """A page of a list: ``next_after`` is the ``after`` of the next page, or null."""
    return {"items": items, "next_after": items[-1][key] if len(items) == limit else None}


def _f(name: str) -> dict[str, str]:
    return {"field": name, "message": "invalid"}


# --- bodies --------------------------------------------------------------------------


# The content codings a body may come in (Content-Encoding; "identity" is none). The
# server hands bodies over as sent (server_options: auto_decompress off), so that a body
# that is not what its header says is this module's 400, not a 500 or a bare text page.
ACCEPTED_CODINGS = "gzip, deflate"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_READ_CHUNK = 256 * 1024


def content_coding(request: web.Request) -> str | None:
    """The body's content coding (gzip or deflate), or None for a body sent as is.

    UnsupportedEncoding (415) for any other coding, or for more than one.
    """
    codings = [
        coding.strip().lower()
        for header in request.headers.getall("Content-Encoding", [])
        for coding in header.split(",")
    ]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1:
        raise UnsupportedEncoding(
            f"the body may have one content coding ({ACCEPTED_CODINGS}), not {len(codings)}"
        )
    coding = {"x-gzip": "gzip"}.get(codings[0], codings[0])
    if coding not in ("gzip", "deflate"):
        raise UnsupportedEncoding(
            f"content coding {codings[0][:40]!r} is not read here: send the body as is, "
            f"or compressed with {ACCEPTED_CODINGS}"
        )
    return coding


class Inflater:
    """Decodes a gzip or deflate body piece by piece, never beyond what the caller has room for."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._z: Any = zlib.decompressobj(_GZIP_WBITS) if coding == "gzip" else None
        # Bytes held until there are enough to decide: a deflate body's first two, or
        # what follows the end of a gzip member (another member may start there).
        self._held = b""

    def feed(self, data: bytes, room: int) -> bytes:
        """The decoded bytes of ``data``; PayloadTooLarge when they would pass ``room``."""
        if self._z is None:
            # "deflate" is the zlib format (RFC 1950), yet some clients send the raw
            # deflate data without its two-byte header: tell them apart by that header.
            data, self._held = self._held + data, b""
            if len(data) < 2:
                self._held = data
                return b""
            zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        out = b""
        while data:
            if self._z.eof:
                # RFC 1952: a gzip body may be several members one after the other.
                data, self._held = self._held + data, b""
                if self.coding != "gzip" or not data.startswith(b"\x1f\x8b"[: len(data)]):
                    raise BadEncoding(f"the body goes on after the end of its {self.coding} data")
                if len(data) < 2:
                    self._held = data
                    break
                self._z = zlib.decompressobj(_GZIP_WBITS)
            try:
                # One byte beyond the room tells "too large" without decoding the rest.
                out += self._z.decompress(data, room - len(out) + 1)
            except zlib.error as exc:
                raise BadEncoding(f"the body is not valid {self.coding} data: {exc}") from None
            if len(out) > room:
                raise PayloadTooLarge(f"the request body must be at most {room} bytes decoded")
            # Below the room all of ``data`` was taken, unless the member ended in it.
            data = self._z.unused_data if self._z.eof else b""
        return out

    def finish(self) -> None:
        if self._z is None or not self._z.eof or self._held:
            raise BadEncoding(f"the body ends before the end of its {self.coding} data")


async def body_chunks(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The body in pieces, decoded as its Content-Encoding says.

    PayloadTooLarge (413) beyond ``limit`` bytes, sent or decoded; UnsupportedEncoding
    (415) for a coding other than gzip or deflate; BadEncoding (400) when the body is not
    what its coding says (not gzip, cut short, more data after its end).
    """
    coding = content_coding(request)
    too_large = f"the request body must be at most {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(too_large)
    inflater = Inflater(coding) if coding is not None else None
    sent = decoded = 0
    try:
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            sent += len(chunk)
            if sent > limit:
                raise PayloadTooLarge(too_large)
            if inflater is not None:
                chunk = inflater.feed(chunk, limit - decoded)
            decoded += len(chunk)
            if decoded > limit:
                raise PayloadTooLarge(too_large)
            if chunk:
                yield chunk
    except HttpProcessingError as exc:
        # The transfer itself broke off (a bad chunk size, a short body).
        raise BadRequest(f"the request body cannot be read: {exc.message}"[:_MAX_MESSAGE]) from None
    if inflater is not None:
        inflater.finish()


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, decoded (see :func:`body_chunks` for its errors)."""
    return b"".join([chunk async for chunk in body_chunks(request, limit)])


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; a database column does not.
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` read as JSON Schema (ECMA 262) reads it: ``$`` is the end of the text.

    Python's ``$`` also matches before a final line break, so ``^[a-z]+$`` would
    pass ``"abc\\n"`` here, and PostgreSQL's ``~`` would then refuse it in a
    CHECK written with the same regex: a 500 instead of a 422. (``$`` escaped or
    in a character class is a plain character and stays.)
    """
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# (the stubs leave extend unannotated)
_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.cache
def _validator(schema_json: str) -> Any:
    return _Validator(json.loads(schema_json))


# A JSON body bigger than this is parsed and checked in a thread, off the event loop
# that carries the calls' AMI events (checking a big batch takes a second or more).
_INLINE_JSON_BYTES = 256 * 1024


async def read_json(
    request: web.Request,
    schema: Mapping[str, Any],
    *,
    limit: int = 1024 * 1024,
    check_strings: bool = True,
    too_large: str | None = None,
    before_validation: Callable[[Any], None] | None = None,
) -> Any:
    """The JSON body, checked against ``schema`` (400 not JSON, 413 beyond ``limit``
    bytes with the message ``too_large`` if given, 415 not a JSON content type, 422
    naming each bad field). ``check_strings``: refuse text PostgreSQL cannot store (NUL,
    lone surrogates) anywhere in the body. ``before_validation`` sees the parsed body
    first (to refuse it cheaply before a long validation)."""
    content_type = request.headers.get("Content-Type")
    if content_type is not None and not _is_json_type(request.content_type):
        raise UnsupportedMediaType(f"the body must be application/json, got {request.content_type}")
    try:
        raw = await read_body(request, limit)
    except PayloadTooLarge:
        if too_large is None:
            raise
        raise PayloadTooLarge(too_large) from None
    if len(raw) <= _INLINE_JSON_BYTES:
        data = _parse_json(raw)
        if before_validation is not None:
            before_validation(data)
        validate(data, schema, check_strings=check_strings)
        return data
    data = await asyncio.to_thread(_parse_json, raw)
    del raw
    if before_validation is not None:
        before_validation(data)
    await asyncio.to_thread(validate, data, schema, check_strings=check_strings)
    return data


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}"[:_MAX_MESSAGE]) from None


def _is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def validate(data: Any, schema: Mapping[str, Any], *, check_strings: bool = True) -> None:
    """InvalidInput listing every field of ``data`` that breaks ``schema``."""
    if check_strings:
        _check_strings(data, "")
    validator = _validator(json.dumps(schema, sort_keys=True))
    details: list[dict[str, str]] = []
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        details.extend(_describe(error))
    if details:
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        where = f"{first['field']}: " if first["field"] else ""
        raise InvalidInput(f"{where}{first['message']}{more}", details=details[:100])


def _check_strings(value: Any, path: str) -> None:
    if isinstance(value, str):
        check_text(value, path or "body")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, f"{path}.{key}" if path else key)
            _check_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]")


def field_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_MESSAGES = {
    "type": "must be of type {}",
    "maxLength": "must be at most {} characters",
    "minLength": "must be at least {} characters",
    "maximum": "must be <= {}",
    "minimum": "must be >= {}",
    "exclusiveMinimum": "must be > {}",
    "exclusiveMaximum": "must be < {}",
    "pattern": "must match {}",
    "enum": "must be one of {}",
    "maxItems": "must hold at most {} items",
    "minItems": "must hold at least {} items",
    "minProperties": "must hold at least {} fields",
}


def _describe(error: Any) -> list[dict[str, str]]:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        names = ", ".join(sorted(known)) or "none"
        return [
            {"field": field_path([*path, key]), "message": f"unknown field (known: {names})"}
            for key in error.instance
            if key not in known
        ]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [
            {"field": field_path([*path, key]), "message": "required"}
            for key in error.validator_value
            if key not in error.instance
        ]
    template = _MESSAGES.get(error.validator)
    message = template.format(error.validator_value) if template else error.message
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return [{"field": field_path(path), "message": message}]
