"""farebox.server.ledger: the double-entry transactional core.

    accounts     who holds money; balances are credits minus debits, per currency
    transfers    immutable movements with idempotency keys; two-phase (pending/post/void)
    posting      pure rules: tap -> fare, top-up, hold, reversal, adjustment
    fare_day     the operator's local day with its boundary (e.g. 03:00 Asia/Almaty)
    settlement   re-rating a rider's day behind the `Rater` interface
    tariff_rater the tariff engine as a `Rater`
    stoplist     versioned stoplist with deltas and full-list checksums (pure)
    store        the storage interface; sqlite_store and postgres_store implement it
    reads/writes queries and postings written once for both stores
    invariants   `verify`: the books recomputed from their transfers
    book         `Ledger`, the facade the sync server and the operator commands call

See docs/ledger.md for the money model.
"""
