"""The device's HTTP client: signed requests, the server's clock, problems sorted by remedy.

Every request is signed (docs/protocol.md, section 7) with a fresh 16-byte nonce and the
device's time corrected by the estimated offset, so a device whose clock drifted still
gets in once it has heard the server. Each answer's `Farebox-Server-Time` updates that
estimate: the server's time minus the midpoint of sending and receiving, if that time
could be now (`server_offset`). A server time that cannot be right is not believed: it
would have every tap judged by a wrong clock, and could leave requests unsignable.
Answers are turned into the errors of farebox.agent.errors by what the device must do
about them (section 8): retry later, send less, stop syncing, or halt uploads.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from farebox.agent.errors import (
    BatchTooLargeError,
    DeviceRefusedError,
    ServerRejectedError,
    ServerUnavailableError,
)
from farebox.agent.store.journal import MAX_CLOCK_OFFSET_MS
from farebox.protocol.auth import HEADER_SERVER_TIME, NONCE_SIZE, sign_request
from farebox.protocol.keys import SigningKey
from farebox.protocol.record_values import EARLIEST_PLAUSIBLE_MS, MAX_TIME_MS
from farebox.protocol.wire import whole_number

log = logging.getLogger(__name__)
CBOR = "application/cbor"
# 401 codes after which the same request, signed afresh, may well pass.
RETRYABLE_401 = frozenset({"stale", "replay"})
# 401 codes by which the server refuses this device (section 8): syncing stops. Another
# 401 (a proxy's, a deploy's) is an answer outside the protocol, retried like any other.
REFUSING_401 = frozenset({"unsigned", "bad_signature", "unknown_device", "revoked"})
# 400 codes by which the server says it cannot decode what the device sent: a bug.
MALFORMED_400 = frozenset({"malformed", "unsupported_version"})


@dataclass(frozen=True, slots=True)
class Answer:
    """A response the caller handles itself: 2xx, 304, 404, a batch's 409, and whatever
    else a server, or a proxy in front of it, may answer outside section 8."""

    status: int
    body: bytes
    problem_code: str | None


def estimate_offset(sent_ms: int, received_ms: int, server_ms: int) -> int:
    """The server's clock minus ours, taking the server to have answered mid-way."""
    return server_ms - (sent_ms + received_ms) // 2


def server_offset(header: str, sent_ms: int, received_ms: int) -> int | None:
    """The offset a `Farebox-Server-Time` value gives, or None if it is not decimal or
    that time cannot be now (see `plausible_offset`)."""
    server_ms = whole_number(header, MAX_TIME_MS)
    return None if server_ms is None else plausible_offset(server_ms, sent_ms, received_ms)


def plausible_offset(server_ms: int, sent_ms: int, received_ms: int) -> int | None:
    """The offset of a server time `server_ms` read between `sent_ms` and `received_ms`, or
    None if that time cannot be now: before 2024 (as for our own clock), past the
    protocol's time bound, or more than MAX_CLOCK_OFFSET_MS from our clock."""
    if not EARLIEST_PLAUSIBLE_MS <= server_ms <= MAX_TIME_MS:
        return None
    offset = estimate_offset(sent_ms, received_ms, server_ms)
    return offset if abs(offset) <= MAX_CLOCK_OFFSET_MS else None


def signed_path(base: str, path: str) -> str:
    """The path a request signature covers: `path` (with its query) under the base URL's
    own path, since the server may be mounted below the root."""
    return urlsplit(base).path.rstrip("/") + path


def problem_code(content_type: str, body: bytes) -> str | None:
    """The stable `code` of an RFC 9457 problem document, if the body is one."""
    if content_type != "application/problem+json":
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    code = document.get("code") if isinstance(document, dict) else None
    return code if isinstance(code, str) else None


class DeviceClient:
    """Signed requests to the sync server for one enrolled device."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        device: str,
        key: SigningKey,
        *,
        clock: Callable[[], int],
        offset_ms: int,
        on_offset: Callable[[int], Awaitable[None]],
    ) -> None:
        self.session = session
        self.base = base
        self.device = device
        self.key = key
        self.clock = clock
        self.offset_ms = offset_ms
        self._on_offset = on_offset

    async def request(self, method: str, path: str, body: bytes = b"") -> Answer:
        """Send one signed request; raise by remedy for anything but the answers callers read."""
        url = self.base.rstrip("/") + path
        sent = self.clock()
        proof = sign_request(
            self.key,
            self.device,
            method,
            signed_path(self.base, path),
            body,
            time_ms=self._corrected(sent),
            nonce=secrets.token_bytes(NONCE_SIZE),
        )
        headers = proof.headers()
        if body:
            headers["Content-Type"] = CBOR
        try:
            async with self.session.request(method, url, data=body, headers=headers) as response:
                data = await response.read()
                status, content_type = response.status, response.content_type
                server_time = response.headers.get(HEADER_SERVER_TIME, "")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServerUnavailableError(
                f"{method} {path}: {type(error).__name__}: {error}"
            ) from None
        offset = server_offset(server_time, sent, self.clock())
        if offset is not None:
            await self._measured(offset)
        elif server_time:
            log.warning(
                "%s %s: ignoring server time %.40r: it cannot be now", method, path, server_time
            )
        code = problem_code(content_type, data)
        where = f"{method} {path} answered {status}" + (f" {code}" if code else "")
        if status == 401 and code in RETRYABLE_401:
            raise ServerUnavailableError(where)
        if status == 401 and code in REFUSING_401:
            raise DeviceRefusedError(where)
        if status == 413:
            raise BatchTooLargeError(where)
        if status == 429 or status >= 500:
            raise ServerUnavailableError(where)
        if status == 400 and code in MALFORMED_400:
            raise ServerRejectedError(where)
        return Answer(status, data, code)

    def _corrected(self, now_ms: int) -> int:
        """Our time corrected by the offset; our own if our clock has jumped so far since
        the offset was measured that the sum is no time at all (the answer measures it)."""
        corrected = now_ms + self.offset_ms
        return corrected if 0 <= corrected <= MAX_TIME_MS else now_ms

    async def _measured(self, offset_ms: int) -> None:
        self.offset_ms = offset_ms
        await self._on_offset(offset_ms)
