"""What every resource's schemas share: the building blocks, the error body, pages,
and the OpenAPI fragments the handler modules describe their operations with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...engine.strategy import NAME_JSON_PATTERN

Schema = dict[str, Any]

# Strategies and status dictionary entries are named alike.
STRATEGY_NAME = NAME_JSON_PATTERN


def nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: Mapping[str, Schema], required: Sequence[str] = (), **extra: Any) -> Schema:
    """An object with exactly these properties (unknown fields are refused)."""
    schema: Schema = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
        **extra,
    }
    if required:
        schema["required"] = list(required)
    return schema


def ref_schema(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# A region code as phonenumbers takes it (US, GB): campaigns' default_region, the
# do-not-call lists' region. Query parameters are checked against it too.
REGION_PATTERN = "^[A-Z]{2}$"
REGION = {"type": "string", "pattern": REGION_PATTERN}
TEXT = {"type": "string"}
INT = {"type": "integer"}
ID = {"type": "integer", "minimum": 1}
DATETIME = {"type": "string", "format": "date-time"}
NUMBER = {"type": "number"}


ERROR = obj(
    {
        "error": obj(
            {"code": TEXT, "message": TEXT, "details": {}},
            required=["code", "message", "details"],
        )
    },
    required=["error"],
)


def page_of(name: str) -> Schema:
    return obj(
        {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "next_after": nullable(INT),
        },
        required=["items", "next_after"],
    )


# --- OpenAPI fragments --------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: Schema, description: str = "", required: bool = True) -> Schema:
    body: Schema = {"required": required, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def ok(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def linked(response: Schema, targets: Mapping[str, Mapping[str, str]]) -> Schema:
    """``response`` with OpenAPI links: operationId -> {parameter: runtime expression}.

    Clients (and schemathesis' stateful phase) follow them from a created resource
    to the operations that use it."""
    links = {
        f"to_{op}": {"operationId": op, "parameters": dict(params)}
        for op, params in targets.items()
    }
    return {**response, "links": links}


def no_content(description: str = "Done") -> Schema:
    return {"description": description}


ERROR_DESCRIPTIONS = {
    "400": "Malformed request (the body is not JSON, or not what its Content-Encoding says)",
    "401": "No bearer token, or an unknown one",
    "403": "The token's scope does not allow this",
    "404": "No such resource",
    "409": "The resource's state does not allow this",
    "413": "The body is too large",
    "415": "The body's content type, or its content coding, is not accepted",
    "422": "Invalid data: details names each bad field",
    "503": "The database is unavailable",
}


def errors(*statuses: str) -> dict[str, Schema]:
    return {status: {"$ref": f"#/components/responses/E{status}"} for status in statuses}


def error_components() -> dict[str, Schema]:
    return {
        f"E{status}": {
            "description": description,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status, description in ERROR_DESCRIPTIONS.items()
    }


def path_param(name: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        param["description"] = description
    return param


def query_param(name: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


CAMPAIGN_ID = path_param("campaign_id", ID)
CONTACT_ID = path_param("contact_id", ID)
PAGE_PARAMS = (
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    query_param(
        "after",
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "Only items with an id above this (the next_after of the previous page)",
    ),
)
