"""farebox.protocol.tariffs: a pure, deterministic fare engine shared by agent and server.

    tariff = load_tariff(toml_text)                  # or import_gtfs(files), decode_tariff(raw)
    fare = rate(tariff, Rider("student"), legs)      # the server: a whole fare day
    quoted = quote(tariff, state, next_leg)          # the agent: one more tap, from its state

Modules: `model` and `tariff` (what a tariff is), `zones` (time zones from the tzdata
package), `timeframes`, `amounts` (money as written, discount rounding), `legs` (fare leg
rules and joins), `transfers`, `credits`, `capping`, `engine` (quote and rate), `native`,
`document` and `canonical` (the TOML format and its canonical document), `gtfs` and
`gtfs_files` (GTFS-Fares v2 import), `wire` (the deterministic CBOR payload of a tariff
package), `journey_json` (journeys and fares as JSON for the CLI and the operator API).
docs/tariffs.md describes the format and the rules.
"""

from farebox.protocol.tariffs.engine import (
    Fare,
    LegFare,
    Quote,
    Reason,
    ReasonKind,
    RiderState,
    quote,
    rate,
)
from farebox.protocol.tariffs.errors import InvalidTariffError, NoFareError, UnknownRiderError
from farebox.protocol.tariffs.gtfs import import_gtfs
from farebox.protocol.tariffs.journey import Holding, Leg, Rider
from farebox.protocol.tariffs.journey_json import fare_to_json, read_journey
from farebox.protocol.tariffs.native import from_document, load_tariff
from farebox.protocol.tariffs.tariff import Tariff, in_force
from farebox.protocol.tariffs.wire import decode_tariff, encode_tariff

__all__ = [
    "Fare",
    "Holding",
    "InvalidTariffError",
    "Leg",
    "LegFare",
    "NoFareError",
    "Quote",
    "Reason",
    "ReasonKind",
    "Rider",
    "RiderState",
    "Tariff",
    "UnknownRiderError",
    "decode_tariff",
    "encode_tariff",
    "fare_to_json",
    "from_document",
    "import_gtfs",
    "in_force",
    "load_tariff",
    "quote",
    "rate",
    "read_journey",
]
