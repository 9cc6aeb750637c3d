"""The wire payload of a tariff package: the canonical document in deterministic CBOR.

A signed package (farebox.protocol.packages) carries these bytes. The map is
`{"v": TARIFF_WIRE_VERSION, "tariff": <canonical document>}`; decoding is strict (one
deterministic CBOR item, known version, exactly these keys) and then the document is
read and checked like a tariff file, every problem named in one DecodeError.
"""

from __future__ import annotations

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError
from farebox.protocol.tariffs.canonical import to_document
from farebox.protocol.tariffs.errors import InvalidTariffError
from farebox.protocol.tariffs.native import from_document
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.wire import Fields

TARIFF_WIRE_VERSION = 1


def tariff_to_wire(tariff: Tariff) -> dict[str, cbor.Value]:
    return {"v": TARIFF_WIRE_VERSION, "tariff": to_document(tariff)}


def encode_tariff(tariff: Tariff) -> bytes:
    """The deterministic bytes of `tariff`: the same tariff always gives the same bytes."""
    return cbor.encode(tariff_to_wire(tariff))


def decode_tariff(raw: bytes) -> Tariff:
    """Read a tariff payload; anything malformed or invalid raises DecodeError."""
    fields = Fields.of(cbor.decode(raw, "tariff"), "tariff")
    fields.expect_keys({"v", "tariff"})
    version = fields.integer("v")
    if version != TARIFF_WIRE_VERSION:
        raise DecodeError(f"tariff: unknown version {version}")
    document = fields.mapping("tariff")
    if not all(isinstance(key, str) for key in document):
        raise DecodeError("tariff.tariff: keys must be text")
    try:
        return from_document({str(key): value for key, value in document.items()})
    except InvalidTariffError as error:
        raise DecodeError(f"tariff: {error}") from None
