"""What operators read about the fleet: device status, sync lag, taps per minute, alerts.

Every function takes an open `Session` and values, like the rest of the sync core; the
operator API and the metrics endpoint are thin shells around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from farebox.protocol.heartbeat import Heartbeat, decode_heartbeat
from farebox.protocol.packages import PackageKind, decode_package
from farebox.server.ledger.store import Session
from farebox.server.sync import devices
from farebox.server.sync.devices import Device

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device as the registry holds it, with the latest heartbeat it sent (if any)."""

    device: Device
    heartbeat: Heartbeat | None
    heartbeat_ms: int | None
    """When the server received that heartbeat."""


@dataclass(frozen=True, slots=True)
class SyncLag:
    """How far behind one device is: time since its last accepted batch, journal depth."""

    device: str
    synced_ms: int | None
    lag_ms: int | None
    """None for a device that never synced."""
    journal_depth: int | None
    """Records waiting on the device, from its latest heartbeat."""


@dataclass(frozen=True, slots=True)
class TicketAlert:
    """A QR ticket accepted on a second validator after its first use elsewhere."""

    token: str
    device: str
    seq: int
    used_ms: int
    first_device: str
    first_seq: int


@dataclass(frozen=True, slots=True)
class Publication:
    """One published package of a whole-state kind."""

    version: int
    created_ms: int
    size: int
    checksum: bytes


async def device_statuses(session: Session) -> list[DeviceStatus]:
    """Every enrolled device with its latest heartbeat, in id order."""
    found = await devices.devices(session)
    rows = await session.fetch("SELECT device, received_ms, body FROM heartbeats")
    # Each body was decoded before it was stored, so it decodes again.
    beats = {device: (received, decode_heartbeat(bytes(body))) for device, received, body in rows}
    statuses = []
    for device in found:
        received, beat = beats.get(device.id, (None, None))
        statuses.append(DeviceStatus(device, beat, received))
    return statuses


def sync_lag(statuses: Sequence[DeviceStatus], now_ms: int) -> list[SyncLag]:
    """Each unrevoked device's lag at `now_ms`; revoked devices are not expected to sync."""
    return [
        SyncLag(
            s.device.id,
            s.device.synced_ms,
            None if s.device.synced_ms is None else max(0, now_ms - s.device.synced_ms),
            None if s.heartbeat is None else s.heartbeat.journal_depth,
        )
        for s in statuses
        if not s.device.revoked
    ]


# Through the index of records by event time (migration 0009): the range's records alone.
RECORDS_PER_MINUTE = (
    "SELECT event_ms / 60000, count(*) FROM records WHERE event_ms >= $1 AND event_ms < $2"
    " GROUP BY 1 ORDER BY 1"
)


async def records_per_minute(session: Session, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """(minute start in UTC ms, records) for every minute in [start, end) with records.

    Counted by the event time the validator stamped, not by arrival, so a bus that synced
    hours late still fills the minutes its riders boarded in.
    """
    rows = await session.fetch(RECORDS_PER_MINUTE, start_ms, end_ms)
    return [(int(minute) * MINUTE_MS, int(count)) for minute, count in rows]


async def ticket_alerts(session: Session, limit: int) -> list[TicketAlert]:
    """The latest `limit` QR tickets used on a second validator, newest first."""
    rows = await session.fetch(
        "SELECT token, device, seq, used_ms, first_device, first_seq FROM ticket_alerts"
        " ORDER BY used_ms DESC, device, seq LIMIT $1",
        limit,
    )
    return [TicketAlert(*row) for row in rows]


async def publications(session: Session, kind: PackageKind) -> list[Publication]:
    """Every published package of `kind`, newest first."""
    rows = await session.fetch(
        "SELECT version, created_ms, body FROM packages WHERE kind = $1 ORDER BY version DESC",
        kind.value,
    )
    published = []
    for version, created_ms, body in rows:
        package = decode_package(bytes(body))
        published.append(Publication(version, created_ms, len(package.payload), package.checksum))
    return published
