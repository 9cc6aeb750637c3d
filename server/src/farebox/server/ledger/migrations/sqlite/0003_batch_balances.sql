-- Balances move once per posted batch instead of once per transfer row. SQLite has no
-- statement triggers, and the row trigger of 0001 cost more than the insert itself: two
-- account updates and a fare-day upsert per row. The store now applies, in the same
-- statement sequence of the same transaction as the insert, the summed moves of exactly
-- the rows it inserted (see sqlite_store.APPLY_BALANCES), as the PostgreSQL statement
-- trigger does from its transition table; `ledger verify` checks every balance against
-- the replay of its transfers.
DROP TRIGGER transfers_apply;
