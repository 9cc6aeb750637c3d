-- Balances move once per posted batch instead of once per transfer row. SQLite has no
-- statement triggers, and the row trigger of 0001 cost more than the insert itself: two
-- account updates and a fare-day upsert per row. The store now applies, in the same
-- transaction as the insert, the summed moves of exactly the rows it inserted (see
-- sqlite_store.APPLY_BALANCES), as the PostgreSQL statement trigger does from its
-- transition table; `ledger verify` checks every balance against the replay of its
-- transfers.
DROP TRIGGER transfers_apply;

-- Fare days are marked for settlement when they close, all of a day's rider days in one
-- statement (writes.close_fare_days), instead of by every posting: a tap into a day still
-- open marks nothing, and only a late tap or reversal into a closed day marks its day
-- again. Every day up to the latest one with postings was marked by the old trigger.
CREATE TABLE fare_day_close (
    only_row       INTEGER PRIMARY KEY DEFAULT 1 CHECK (only_row = 1),
    closed_through TEXT NOT NULL
) STRICT;

INSERT INTO fare_day_close (closed_through)
SELECT coalesce(max(fare_day), '0001-01-01') FROM transfers;
