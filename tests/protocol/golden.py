"""Golden vectors of the wire format: fixed inputs, a fixed key, and the exact bytes.

`test_golden_vectors.py` rebuilds these and compares them with the checked-in
`vectors/protocol-v1.json`, so an encoding change cannot slip by. After a deliberate
change of the wire format (with a new version), regenerate with
`.venv/bin/python -m tests.protocol.golden` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

from farebox.protocol.chain import Cursor, genesis
from farebox.protocol.checkpoint import Checkpoint, encode_checkpoint, sign_checkpoint
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Ack, Batch, encode_message
from farebox.protocol.packages import PackageKind, encode_package, sign_package
from farebox.protocol.stoplist import StoplistChange, StoplistChecksum, encode_stoplist_change
from tests.support.records import MORNING_MS, chain

VECTORS = Path(__file__).parent / "vectors" / "protocol-v1.json"
DEVICE_SEED = bytes(range(32))
SERVER_SEED = bytes(range(32, 64))


def build_vectors() -> dict[str, object]:
    device_key = SigningKey.from_seed(DEVICE_SEED)
    server_key = SigningKey.from_seed(SERVER_SEED)
    entries = chain(device="bus-017", count=3)
    head = entries[-1]
    checkpoint = sign_checkpoint(
        Checkpoint("bus-017", head.record.seq, head.digest, MORNING_MS + 60_000), device_key
    )
    batch = Batch("bus-017", tuple(entries), checkpoint)
    tokens = ["nfc:04a1b2c3d4e5f6", "nfc:04ffee0011aa22"]
    change = StoplistChange(full=True, added=frozenset(tokens), removed=frozenset())
    package = sign_package(
        PackageKind.STOPLIST,
        1,
        None,
        StoplistChecksum.of(tokens).digest(),
        encode_stoplist_change(change),
        server_key,
    )
    return {
        "device_seed": DEVICE_SEED.hex(),
        "device_public_key": device_key.verify_key.raw.hex(),
        "device_key_id": device_key.key_id.hex(),
        "server_seed": SERVER_SEED.hex(),
        "genesis": genesis("bus-017").hex(),
        "records": [{"cbor": e.raw.hex(), "sha256": e.digest.hex()} for e in entries],
        "checkpoint": encode_checkpoint(checkpoint).hex(),
        "batch": encode_message(batch).hex(),
        "ack": encode_message(Ack("bus-017", Cursor(3, head.digest), MORNING_MS + 61_000)).hex(),
        "stoplist_package": encode_package(package).hex(),
    }


def main() -> None:
    VECTORS.write_text(json.dumps(build_vectors(), indent=2) + "\n")


if __name__ == "__main__":
    main()
