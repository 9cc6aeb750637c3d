"""The device registry: enrollment tokens, enrolled devices, their cursors and nonces.

Every function takes an open `Session` (one database transaction) and values; none knows
of HTTP. An enrollment token is shown to the operator once and stored only as its
SHA-256, so the database never holds a usable token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from farebox.protocol.chain import Cursor
from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.keys import VerifyKey
from farebox.protocol.records import check_device_id
from farebox.server.ledger.store import Row, Session
from farebox.server.sync.errors import AuthenticationError, DeviceError, EnrollmentError

TOKEN_BYTES = 18
TOKEN_PREFIX = "fbe_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: DeviceKind
    key: VerifyKey
    enrolled_ms: int
    revoked_ms: int | None
    cursor: Cursor
    synced_ms: int | None
    refusals: int

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None


_DEVICE_COLUMNS = (
    "id, kind, public_key, enrolled_ms, revoked_ms, cursor_seq, cursor_head, synced_ms, refusals"
)


def _device(row: Row) -> Device:
    ident, kind, key, enrolled, revoked, seq, head, synced, refusals = row
    return Device(
        id=ident,
        kind=DeviceKind(kind),
        key=VerifyKey(bytes(key)),
        enrolled_ms=enrolled,
        revoked_ms=revoked,
        cursor=Cursor(seq, bytes(head)),
        synced_ms=synced,
        refusals=refusals,
    )


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_token(
    session: Session, name: str, kind: DeviceKind, now_ms: int, ttl_ms: int
) -> str:
    """Make a one-time enrollment token for a device to be called `name`; return it."""
    check_device_id(name)
    taken = await session.fetch("SELECT 1 FROM devices WHERE id = $1", name)
    if taken:
        # Devices are never deleted: what they synced names them, revoked or not.
        raise EnrollmentError(
            f"a device {name!r} is enrolled already, and a device id stays taken even once"
            " revoked: enroll the validator under a new name, or, if its enrollment was cut"
            " short, run its enroll again with the same token"
        )
    # A fixed prefix: a bare URL-safe token may start with "-", which a command line such
    # as `farebox-agent enroll --token T` would take for an option.
    token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(TOKEN_BYTES)}"
    await session.execute(
        "INSERT INTO enrollment_tokens (token_hash, name, kind, created_ms, expires_ms) "
        "VALUES ($1, $2, $3, $4, $5)",
        _token_hash(token), name, kind.value, now_ms, now_ms + ttl_ms,
    )  # fmt: skip
    return token


async def enroll(session: Session, token: str, key: VerifyKey, now_ms: int) -> Device:
    """Spend `token` to enroll the device holding `key`; refuse an unknown, used or old one.

    A retry is answered again: an agent whose enrollment was cut short (the answer lost)
    asks again with the same token and the same key, and gets the device that the token
    enrolled, as stored, while that device holds this key and is not revoked. A spent
    token with any other key is refused.
    """
    hashed = _token_hash(token)
    # An update that changes nothing takes the token's row lock on PostgreSQL, so that two
    # requests spending one token take turns and the second finds it spent (a retry).
    await session.execute(
        "UPDATE enrollment_tokens SET used_ms = used_ms WHERE token_hash = $1", hashed
    )
    rows = await session.fetch(
        "SELECT name, kind, expires_ms, used_ms FROM enrollment_tokens WHERE token_hash = $1",
        hashed,
    )
    if not rows:
        raise EnrollmentError("unknown enrollment token")
    name, kind, expires_ms, used_ms = rows[0]
    if used_ms is not None:
        return await _enrolled_before(session, str(name), key)
    if now_ms >= expires_ms:
        raise EnrollmentError("this enrollment token has expired; make a new one")
    if await session.fetch("SELECT 1 FROM devices WHERE public_key = $1", key.raw):
        raise EnrollmentError("this public key belongs to an enrolled device")
    if await session.fetch("SELECT 1 FROM devices WHERE id = $1", name):
        raise EnrollmentError(f"a device {name!r} is enrolled already")
    await session.execute(
        "UPDATE enrollment_tokens SET used_ms = $1 WHERE token_hash = $2", now_ms, hashed
    )
    start = Cursor.start(str(name))
    await session.execute(
        "INSERT INTO devices (id, kind, public_key, enrolled_ms, cursor_seq, cursor_head) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        name, kind, key.raw, now_ms, start.seq, start.head,
    )  # fmt: skip
    return Device(str(name), DeviceKind(kind), key, now_ms, None, start, None, 0)


async def _enrolled_before(session: Session, name: str, key: VerifyKey) -> Device:
    """The device a spent token enrolled, if it holds `key` and is not revoked."""
    found = await device(session, name)
    if found is None or found.key.raw != key.raw or found.revoked:
        raise EnrollmentError("this enrollment token was used already")
    return found


async def device(session: Session, device_id: str, *, lock: bool = False) -> Device | None:
    """The device `device_id`, or None; `lock` holds its row until the transaction ends."""
    if lock:
        # An update that changes nothing takes PostgreSQL's row lock, so two server
        # processes judging batches of one device take turns; SQLite's transaction holds
        # the database's one write lock already. The same statement serves both.
        await session.execute("UPDATE devices SET refusals = refusals WHERE id = $1", device_id)
    rows = await session.fetch(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = $1",  # noqa: S608 (fixed text)
        device_id,
    )
    return _device(rows[0]) if rows else None


async def devices(session: Session) -> list[Device]:
    rows = await session.fetch(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY id")  # noqa: S608
    return [_device(row) for row in rows]


async def revoke(session: Session, device_id: str, now_ms: int) -> Device:
    """Refuse the device's requests from now on; what it synced before stays."""
    found = await device(session, device_id, lock=True)
    if found is None:
        raise DeviceError(f"no device {device_id!r}")
    if not found.revoked:
        await session.execute("UPDATE devices SET revoked_ms = $1 WHERE id = $2", now_ms, device_id)
    return found


async def advance(session: Session, device_id: str, cursor: Cursor, now_ms: int) -> None:
    await session.execute(
        "UPDATE devices SET cursor_seq = $1, cursor_head = $2, synced_ms = $3 WHERE id = $4",
        cursor.seq, cursor.head, now_ms, device_id,
    )  # fmt: skip


async def count_refusal(session: Session, device_id: str) -> None:
    await session.execute("UPDATE devices SET refusals = refusals + 1 WHERE id = $1", device_id)


@dataclass(frozen=True, slots=True)
class Nonce:
    """A signed request's nonce, which its device may not use again within `window_ms`."""

    value: bytes
    window_ms: int


async def remember_nonce(session: Session, device_id: str, nonce: Nonce, now_ms: int) -> bool:
    """Record a request nonce; False if the device used it within the window (a replay).

    The device's own nonces older than two windows are forgotten here, and only its own:
    on PostgreSQL the rows a transaction deletes stay locked until it commits, and a batch's
    transaction admits its device first, so deleting every device's old nonces made each
    upload wait for the one before it. (A device that stops asking leaves the nonces of
    its last window, a handful of rows.)
    """
    await session.execute(
        "DELETE FROM request_nonces WHERE device = $1 AND seen_ms < $2",
        device_id,
        now_ms - 2 * nonce.window_ms,
    )
    # One statement that inserts or finds the nonce: two requests with the same nonce at
    # once (a replay sent to two server processes) cannot both pass, and the second is a
    # replay, not a clash of keys.
    noted = await session.fetch(
        "INSERT INTO request_nonces (device, nonce, seen_ms) VALUES ($1, $2, $3)"
        " ON CONFLICT (device, nonce) DO NOTHING RETURNING 1",
        device_id, nonce.value, now_ms,
    )  # fmt: skip
    return bool(noted)


def in_standing(found: Device | None, device_id: str) -> Device:
    """`found`, the device `device_id` as read, unless it is unknown or revoked (then
    AuthenticationError with the code that says which)."""
    if found is None:
        raise AuthenticationError(f"unknown device {device_id!r}", "unknown_device")
    if found.revoked:
        raise AuthenticationError(f"device {device_id!r} is revoked", "revoked")
    return found


async def admit(
    session: Session, device_id: str, nonce: Nonce, now_ms: int, *, lock: bool = False
) -> Device:
    """The device of a signed request, inside the transaction that serves it; refused
    (AuthenticationError, and nothing of the transaction stays) if it is unknown, revoked,
    or used `nonce` before. `lock` as for `device`."""
    found = in_standing(await device(session, device_id, lock=lock), device_id)
    if not await remember_nonce(session, device_id, nonce, now_ms):
        raise AuthenticationError("this request was seen before", "replay")
    return found
