"""The downloader against a real HTTP server on 127.0.0.1: deltas applied, a tampered
package refused with the old state kept, a checksum mismatch answered by a full snapshot;
and the heartbeat that reports the versions."""

from __future__ import annotations

import dataclasses
import hashlib

from farebox.agent.sync.enrollment import read_enrollment
from farebox.agent.sync.report import read_sync_report
from farebox.protocol.keys import SigningKey
from farebox.protocol.package_keys import endorse
from farebox.protocol.packages import Package, PackageKind, sign_package
from farebox.protocol.stoplist import StoplistChange, StoplistChecksum, encode_stoplist_change
from farebox.protocol.tariffs.wire import encode_tariff
from tests.agent.builders import city_tariff
from tests.agent.harness import until
from tests.agent.sync.conftest import Validator
from tests.agent.sync.server import PACKAGE_KEY, SyncServer, whole_package


def stoplist(
    version: int, base: int | None, added: set[str], removed: set[str], after: set[str]
) -> Package:
    change = StoplistChange(base is None, frozenset(added), frozenset(removed))
    return sign_package(
        PackageKind.STOPLIST,
        version,
        base,
        StoplistChecksum.of(after).digest(),
        encode_stoplist_change(change),
        PACKAGE_KEY,
    )


def versions(validator: Validator) -> dict[str, int]:
    return validator.store.caches.versions()


def package_requests(server: SyncServer, kind: str) -> list[str]:
    return [p for m, p, _ in server.requests if m == "GET" and p.startswith(f"/v1/packages/{kind}")]


async def test_packages_and_a_stoplist_delta_are_applied(
    server: SyncServer, validator: Validator
) -> None:
    server.publish(whole_package(PackageKind.TARIFF, 3, encode_tariff(city_tariff())))
    server.publish(stoplist(1, None, {"nfc:01", "nfc:02"}, set(), {"nfc:01", "nfc:02"}))
    validator.start()
    await until(lambda: versions(validator)["stoplist"] == 1 and versions(validator)["tariff"] == 3)
    server.publish(stoplist(2, 1, {"nfc:03"}, {"nfc:01"}, {"nfc:02", "nfc:03"}))
    await until(lambda: versions(validator)["stoplist"] == 2)
    caches = validator.store.caches
    assert [t in caches.stoplist for t in ("nfc:01", "nfc:02", "nfc:03")] == [False, True, True]
    await until(lambda: server.heartbeats[-1].versions[PackageKind.STOPLIST] == 2)
    await validator.halt()
    beat = server.heartbeats[-1]
    assert beat.versions[PackageKind.TARIFF] == 3
    assert beat.readers == {"nfc-0": "ready"}
    assert beat.journal_depth == 0


async def test_a_tampered_package_is_refused_and_the_old_one_kept(
    server: SyncServer, validator: Validator
) -> None:
    server.publish(whole_package(PackageKind.TARIFF, 1, encode_tariff(city_tariff())))
    validator.start()
    await until(lambda: versions(validator)["tariff"] == 1)
    genuine = whole_package(PackageKind.TARIFF, 2, encode_tariff(city_tariff()))
    forged = dataclasses.replace(genuine, payload=genuine.payload + b" ")
    server.publish(forged)
    await until(
        lambda: "tariff" in str((read_sync_report(validator.directory) or {}).get("last_error"))
    )
    await validator.halt()
    assert versions(validator)["tariff"] == 1
    assert validator.store.caches.tariff is not None


async def test_a_checksum_mismatch_fetches_a_full_snapshot(
    server: SyncServer, validator: Validator
) -> None:
    server.publish(stoplist(1, None, {"nfc:01"}, set(), {"nfc:01"}))
    validator.start()
    await until(lambda: versions(validator)["stoplist"] == 1)
    wrong = stoplist(2, 1, {"nfc:02"}, set(), {"nfc:99"})  # the checksum of another list
    server.publish(wrong)
    server.publish(stoplist(2, None, {"nfc:01", "nfc:02"}, set(), {"nfc:01", "nfc:02"}))
    await until(lambda: versions(validator)["stoplist"] == 2)
    await validator.halt()
    # A poll names the checksum of the list held, for a server restored from a backup.
    held = StoplistChecksum.of(["nfc:01"]).digest().hex()
    asked = package_requests(server, "stoplist")
    assert asked.index("/v1/packages/stoplist?have=0", 1) > asked.index(
        f"/v1/packages/stoplist?have=1&checksum={held}"
    )
    assert "nfc:02" in validator.store.caches.stoplist


async def test_a_package_signed_by_a_rotated_key_is_applied_once_its_key_is_endorsed(
    server: SyncServer, validator: Validator
) -> None:
    rotated, stranger = SigningKey.generate(), SigningKey.generate()
    payload = encode_tariff(city_tariff())

    def tariff(version: int, key: SigningKey) -> Package:
        checksum = hashlib.sha256(payload).digest()
        return sign_package(PackageKind.TARIFF, version, None, checksum, payload, key)

    # Vouched for only by a key the device does not trust: refused, nothing learned.
    server.endorsements.append(endorse(rotated.verify_key, stranger))
    server.publish(tariff(3, rotated))
    validator.start()
    await until(lambda: len(package_requests(server, "tariff")) >= 2)
    assert versions(validator)["tariff"] == 0
    # The key that signed until now vouches for it: learned, kept, and the tariff applied.
    server.endorsements.append(endorse(rotated.verify_key, PACKAGE_KEY))
    await until(lambda: versions(validator)["tariff"] == 3)
    await validator.halt()
    enrolled = read_enrollment(validator.directory)
    assert enrolled is not None
    assert enrolled.package_keys == (PACKAGE_KEY.verify_key, rotated.verify_key)
