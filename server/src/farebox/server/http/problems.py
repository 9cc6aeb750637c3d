"""One error middleware: every refusal becomes an RFC 9457 problem document.

Handlers raise; they never build error responses themselves. Each `SyncError` carries its
stable `code` and HTTP status; other errors of the server's tree map by class; anything
unexpected is a 500 whose detail stays in the log, tagged with the request id that the
response also carries.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from farebox.protocol.auth import HEADER_SERVER_TIME
from farebox.protocol.errors import DecodeError, UnsupportedVersionError
from farebox.server.errors import (
    IdempotencyConflictError,
    LedgerError,
    ServerError,
    StoreFullError,
)
from farebox.server.http.state import SETTINGS
from farebox.server.sync.errors import SyncError

log = logging.getLogger(__name__)
REQUEST_ID = "X-Request-Id"
PROBLEM_TYPE = "application/problem+json"
_request_ids = itertools.count(1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, code: str, detail: str) -> web.Response:
    """An RFC 9457 problem document with farebox's stable `code`."""
    body = {
        "type": f"https://farebox.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return web.json_response(body, status=status, content_type=PROBLEM_TYPE)


def classify(error: Exception) -> tuple[int, str]:
    """The HTTP status and stable problem code of a refusal."""
    if isinstance(error, SyncError):
        return error.status, error.code
    if isinstance(error, UnsupportedVersionError):
        return 400, "unsupported_version"
    if isinstance(error, DecodeError):
        return 400, "malformed"
    if isinstance(error, IdempotencyConflictError):
        return 409, "idempotency_conflict"
    if isinstance(error, LedgerError):
        return 422, "ledger_refused"
    if isinstance(error, StoreFullError):
        return 503, "storage_full"
    if isinstance(error, ServerError):
        return 503, "unavailable"
    return 500, "internal"


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag the request with an id and the server's time; turn errors into problems."""
    request_id = request.headers.get(REQUEST_ID) or f"r{next(_request_ids)}"
    clock = request.app[SETTINGS].clock
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if error.status < 400:  # 304 Not Modified and redirects are answers, not problems
            _tag(error.headers, request_id, clock())
            raise
        # aiohttp's own refusals (404 route, 405 method, 413 body too large) as problems.
        code = "too_large" if error.status == 413 else error.reason.lower().replace(" ", "_")
        response = problem(error.status, code, error.text or error.reason)
    except (SyncError, DecodeError, ServerError) as error:
        status, code = classify(error)
        # A refusal is the client's matter; a 503 (a full or unreachable store) the operator's.
        level = logging.ERROR if status >= 500 else logging.INFO
        log.log(level, "request %s %s %s refused: %s %s", request_id, request.method,
                request.path, code, error)  # fmt: skip
        response = problem(status, code, str(error))
        if isinstance(error, SyncError) and error.challenge:
            response.headers["WWW-Authenticate"] = error.challenge
    except Exception:
        log.exception("request %s %s %s failed", request_id, request.method, request.path)
        response = problem(500, "internal", f"internal error; see the server log for {request_id}")
    _tag(response.headers, request_id, clock())
    return response


def _tag(headers: MutableMapping[str, str], request_id: str, now_ms: int) -> None:
    headers[REQUEST_ID] = request_id
    headers[HEADER_SERVER_TIME] = str(now_ms)
