"""The OpenAPI 3.1 description of both of the server's APIs, built here and served as JSON.

The device API speaks CBOR (its messages are specified in docs/protocol.md; the schemas
here name them rather than restate them); the operator API speaks JSON. A test checks
that every route the application registers is described here, and nothing else.
"""

from __future__ import annotations

from typing import Any

from farebox.protocol.auth import HEADER_DEVICE, HEADER_SERVER_TIME
from farebox.protocol.packages import PackageKind

Document = dict[str, Any]
CBOR = "application/cbor"
JSON = "application/json"
PROBLEM = "application/problem+json"


def _problem(description: str) -> Document:
    return {"description": description, "content": {PROBLEM: {"schema": _ref("Problem")}}}


def _ref(name: str) -> Document:
    return {"$ref": f"#/components/schemas/{name}"}


def _cbor(message: str) -> Document:
    return {
        CBOR: {
            "schema": {
                "type": "string",
                "contentMediaType": CBOR,
                "description": f"a {message} (docs/protocol.md)",
            }
        }
    }


def _json(description: str, schema: Document | None = None) -> Document:
    return {"description": description, "content": {JSON: {"schema": schema or {"type": "object"}}}}


def _unavailable() -> Document:
    return _problem(
        "`storage_full` (the store's disk is full) or `unavailable`: nothing was kept; retry"
    )


def _device(
    summary: str, responses: Document, body: str | None = None, *, signed: bool = True,
    parameters: tuple[Document, ...] = (),
) -> Document:  # fmt: skip
    operation: Document = {
        "tags": ["device"],
        "summary": summary,
        "security": [{"deviceSignature": []}] if signed else [],
        "parameters": list(parameters),
        "responses": {
            **responses,
            "400": _problem("`malformed` or `unsupported_version`: the body does not decode"),
            "413": _problem("`too_large`: the body exceeds the limit (8 MiB)"),
            "503": _unavailable(),
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _cbor(body)}
    if signed:
        operation["responses"]["401"] = _problem(
            "`unsigned`, `bad_signature`, `unknown_device`, `revoked`, `stale` or `replay`"
        )
    return operation


def _operator(
    summary: str, ok: str, *, status: str = "200", body: Document | None = None,
    query: tuple[str, ...] = (), path: tuple[str, ...] = (), header: tuple[str, ...] = (),
    also: Document | None = None,
) -> Document:  # fmt: skip
    parameters = [
        {"name": name, "in": where, "required": where != "query", "schema": {"type": "string"}}
        for where, names in (("path", path), ("header", header), ("query", query))
        for name in names
    ]
    operation: Document = {
        "tags": ["operator"],
        "summary": summary,
        "security": [{"operatorToken": []}],
        "parameters": parameters,
        "responses": {
            status: _json(ok),
            "400": _problem("`malformed`: a parameter or the body is not as described"),
            "401": _problem("`operator_token`: no or a wrong bearer token, or the API is closed"),
            "503": _unavailable(),
            **(also or {}),
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    return operation


_DAY = ("day",)
_REASON_BODY = {
    JSON: {
        "schema": {
            "type": "object",
            "required": ["reason"],
            "properties": {
                "reason": {"enum": ["lost", "stolen", "fraud", "other"]},
                "note": {"type": "string"},
            },
        }
    }
}
_TOP_UP_BODY = {
    JSON: {
        "schema": {
            "type": "object",
            "required": ["amount", "currency", "channel"],
            "properties": {
                "amount": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "minor units, at most FAREBOX_MAX_TOP_UP (10000000 unless set)",
                },
                "currency": {
                    "type": "string",
                    "pattern": "^[A-Z]{3}$",
                    "description": "the ledger's currency (FAREBOX_CURRENCY)",
                },
                "channel": {"enum": ["sms", "bank_card", "kiosk", "cash_desk", "app"]},
            },
        }
    }
}

_PACKAGE_PARAMETERS: tuple[Document, ...] = (
    {"name": "kind", "in": "path", "required": True,
     "schema": {"enum": [kind.value for kind in PackageKind]}},
    {"name": "have", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "checksum", "in": "query",
     "description": "the checksum of the whole state held (the stoplist's is compared)",
     "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}},
)  # fmt: skip

DEVICE_PATHS: Document = {
    "/v1/enroll": {
        "post": _device(
            "Enroll a device with a one-time token and its public key",
            {
                "200": {
                    "description": "the enrollment (again for a retry with the same key)",
                    "content": _cbor("enrollment"),
                },
                "403": _problem(
                    "`enrollment_token`: unknown, expired, or used by another key or a"
                    " revoked device"
                ),
            },
            "enroll request",
            signed=False,
        )
    },
    "/v1/batches": {
        "post": _device(
            "Upload a batch of journal records with a signed checkpoint",
            {
                "200": {
                    "description": "the ack (also for a re-sent batch)",
                    "content": _cbor("ack"),
                },
                "409": {
                    "description": "a refusal (`gap`, `fork`, `bad_signature`) with the cursor",
                    "content": _cbor("refusal"),
                },
            },
            "batch",
        )
    },
    "/v1/packages/{kind}": {
        "get": _device(
            "Fetch the signed package of a kind, a delta from `have` where it has deltas",
            {
                "200": {
                    "description": 'a signed package; `ETag: "kind-version"`',
                    "content": _cbor("package"),
                },
                "304": {"description": "`have` is the latest (or `If-None-Match` matches)"},
                "400": _problem("`malformed`: a bad kind, version or checksum"),
                "404": _problem("`no_package`: none of that kind is published"),
                "409": _problem(
                    "`stoplist_ahead`: a stoplist the server did not publish, which it will not"
                    " renumber past now (once an hour at most, never 2**40 past its own)"
                ),
            },
            parameters=_PACKAGE_PARAMETERS,
        )
    },
    "/v1/package-keys": {
        "get": _device(
            "Fetch the endorsements of rotated package keys, oldest first",
            {
                "200": {
                    "description": "each key endorsed by the package key made before it",
                    "content": _cbor("list of package-key endorsements"),
                }
            },
        )
    },
    "/v1/heartbeat": {
        "post": _device(
            "Report versions in force, journal depth, clock offset and reader health",
            {"204": {"description": "kept as the device's latest heartbeat"}},
            "heartbeat",
        )
    },
}

OPERATOR_PATHS: Document = {
    "/api/v1/devices": {
        "get": _operator(
            "Every device: cursor, last sync, refusals, revocation, latest heartbeat",
            "`{devices: [...]}`",
        )
    },
    "/api/v1/devices/{device}/revoke": {
        "post": _operator(
            "Refuse a device's requests from now on; what it synced stays",
            "the device",
            path=("device",),
            also={"404": _problem("`unknown_device`")},
        )
    },
    "/api/v1/accounts/{token}": {
        "get": _operator(
            "A rider's balance, available and held amounts, blocks and statement",
            "the account",
            path=("token",),
            query=("limit",),
            also={"404": _problem("`unknown_account`")},
        )
    },
    "/api/v1/accounts/{token}/top-ups": {
        "post": _operator(
            "Credit a rider; `Idempotency-Key` (required) is the channel's payment id",
            "the first posting of this key",
            status="201",
            body=_TOP_UP_BODY,
            path=("token",),
            header=("Idempotency-Key",),
            also={
                "200": _json("a repeat of a top-up already posted: its first receipt"),
                "409": _problem("`idempotency_conflict`: the key was used with other content"),
                "422": _problem(
                    "`ledger_refused`: the books cannot take it (a balance would pass 64 bits);"
                    " nothing was posted"
                ),
            },
        )
    },
    "/api/v1/cards/{token}/block": {
        "post": _operator(
            "Stop-list a token for a reason",
            "the stoplist version and the token's blocks",
            body=_REASON_BODY,
            path=("token",),
        )
    },
    "/api/v1/cards/{token}/unblock": {
        "post": _operator(
            "Lift an operator's block (other reasons stay)",
            "the stoplist version and the token's remaining blocks",
            body=_REASON_BODY,
            path=("token",),
        )
    },
    "/api/v1/tariffs": {
        "get": _operator("Published tariff packages, newest first", "`{tariffs: [...]}`"),
        "post": _operator(
            "Publish a native TOML tariff as the next tariff package",
            "the tariff id and package version",
            status="201",
            body={"application/toml": {"schema": {"type": "string"}}},
            also={"422": _problem("`invalid_tariff`: every problem is in the detail")},
        ),
    },
    "/api/v1/stoplist": {
        "get": _operator("The stoplist's version, checksum and size", "the stoplist head")
    },
    "/api/v1/reports/revenue": {
        "get": _operator(
            "Fare revenue per carrier and route for a fare day (default: today's)",
            "`{day, revenue: [...]}`",
            query=_DAY,
        )
    },
    "/api/v1/reports/taps-per-minute": {
        "get": _operator(
            "Journal records per minute of a fare day, by the time devices stamped",
            "`{day, start_ms, minutes: [{minute_ms, taps}]}`",
            query=_DAY,
        )
    },
    "/api/v1/reports/sync-lag": {
        "get": _operator(
            "Time since each device's last accepted batch, and its journal depth",
            "`{now_ms, devices: [...]}`",
        )
    },
    "/api/v1/ticket-alerts": {
        "get": _operator(
            "QR tickets accepted on a second validator, newest first",
            "`{alerts: [...]}`",
            query=("limit",),
        )
    },
}

SERVICE_PATHS: Document = {
    "/": {"get": {"summary": "The operator dashboard (HTML)", "security": [],
                  "responses": {"200": {"description": "the page"}}}},
    "/openapi.json": {"get": {"summary": "This document", "security": [],
                              "responses": {"200": _json("OpenAPI 3.1")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)", "security": [],
                         "responses": {"200": {"description": "the exposition text"}}}},
}  # fmt: skip


def document() -> Document:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "farebox sync server",
            "version": "1",
            "description": (
                "The device API (CBOR, signed by the device key; docs/protocol.md section 8)"
                " and the operator API (JSON, bearer token). Every response carries "
                f"`{HEADER_SERVER_TIME}`; errors are RFC 9457 problems with a stable `code`."
            ),
        },
        "paths": {**DEVICE_PATHS, **OPERATOR_PATHS, **SERVICE_PATHS},
        "components": {
            "securitySchemes": {
                "operatorToken": {"type": "http", "scheme": "bearer"},
                "deviceSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": HEADER_DEVICE,
                    "description": "the device id; the request also carries its time, nonce"
                    " and a signature over method, path, time and body (docs/protocol.md 7)",
                },
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                    },
                }
            },
        },
    }
