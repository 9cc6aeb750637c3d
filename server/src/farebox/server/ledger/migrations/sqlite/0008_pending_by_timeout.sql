-- Holds not resolved in time are charged in full (Ledger.charge_expired), found by their
-- timeout. Without an index that read every transfer ever posted; this one holds only the
-- pending transfers, so fares and top-ups cost it nothing but the test of their phase.
CREATE INDEX transfers_pending_timeout ON transfers (timeout_ms) WHERE phase = 'pending';
