"""farebox.protocol.tariffs: a pure, deterministic fare engine shared by agent and server.

    tariff = load_tariff(toml_text)                  # or import_gtfs(files), decode_tariff(raw)
    fare = rate(tariff, Rider("student"), legs)      # the server: a whole fare day
    quoted = quote(tariff, state, next_leg)          # the agent: one more tap, from its state

Modules: `model` and `tariff` (what a tariff is), `timeframes`, `amounts` (money as written,
discount rounding), `legs` (fare leg rules and joins), `transfers`, `capping`, `engine`
(quote and rate), `native` and `canonical` (the TOML format and its canonical document),
`gtfs` (GTFS-Fares v2 import), `wire` (the deterministic CBOR payload of a tariff package).
"""
