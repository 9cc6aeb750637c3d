"""The heartbeat: how a device tells the server its health between batches.

Versions of each package kind in force, how many records wait in the journal and since
when, the device's estimate of its clock offset from the server, free disk, and each
reader's health. The server keeps the latest one per device for the operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.packages import PackageKind
from farebox.protocol.records import check_device_id, check_time_ms
from farebox.protocol.wire import Fields

HEARTBEAT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Heartbeat:
    device: str
    time_ms: int
    versions: Mapping[PackageKind, int]
    journal_depth: int
    oldest_unsynced_ms: int | None
    clock_offset_ms: int
    disk_free_bytes: int
    readers: Mapping[str, str]

    def __post_init__(self) -> None:
        check_device_id(self.device)
        check_time_ms(self.time_ms)
        if self.oldest_unsynced_ms is not None:
            check_time_ms(self.oldest_unsynced_ms, "oldest_unsynced_ms")
        if self.journal_depth < 0 or self.disk_free_bytes < 0:
            raise InvalidValueError("journal depth and free disk are never negative")
        if any(version < 0 for version in self.versions.values()):
            raise InvalidValueError("package versions are never negative")


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    return cbor.encode(
        {
            "v": HEARTBEAT_FORMAT,
            "dev": heartbeat.device,
            "t": heartbeat.time_ms,
            "versions": {kind.value: v for kind, v in heartbeat.versions.items()},
            "depth": heartbeat.journal_depth,
            "oldest": heartbeat.oldest_unsynced_ms,
            "offset": heartbeat.clock_offset_ms,
            "disk": heartbeat.disk_free_bytes,
            "readers": dict(heartbeat.readers),
        }
    )


def decode_heartbeat(data: bytes) -> Heartbeat:
    keys = {"v", "dev", "t", "versions", "depth", "oldest", "offset", "disk", "readers"}
    fields = Fields.of(cbor.decode(data, "heartbeat"), "heartbeat")
    fields.expect_keys(keys)
    if fields.integer("v") != HEARTBEAT_FORMAT:
        raise DecodeError(f"heartbeat: unknown format {fields.integer('v')}")
    versions: dict[PackageKind, int] = {}
    for kind, version in fields.mapping("versions").items():
        member = PackageKind._value2member_map_.get(kind)
        if not isinstance(member, PackageKind) or type(version) is not int:
            raise DecodeError(f"heartbeat.versions: bad entry {kind!r}")
        versions[member] = version
    readers = fields.mapping("readers")
    if not all(type(k) is str and type(v) is str for k, v in readers.items()):
        raise DecodeError("heartbeat.readers: names and states are text")
    try:
        return Heartbeat(
            device=fields.text("dev"),
            time_ms=fields.integer("t"),
            versions=versions,
            journal_depth=fields.integer("depth"),
            oldest_unsynced_ms=fields.optional_integer("oldest"),
            clock_offset_ms=fields.integer("offset"),
            disk_free_bytes=fields.integer("disk"),
            readers={str(k): str(v) for k, v in readers.items()},
        )
    except InvalidValueError as error:
        raise DecodeError(f"heartbeat: {error}") from None
