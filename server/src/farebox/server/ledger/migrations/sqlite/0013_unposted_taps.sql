-- Accepted taps whose records were stored but whose fares could not be posted (a route or
-- token the ledger cannot name, a rider account of another currency), with the reason.
-- The device's batch is taken all the same, so that one such tap never holds up its
-- chain; `farebox-server taps repost` posts them once the cause is mended, and deletes
-- each row in the transaction that posts its tap.
CREATE TABLE unposted_taps (
    device   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    noted_ms INTEGER NOT NULL,
    PRIMARY KEY (device, seq),
    FOREIGN KEY (device, seq) REFERENCES records (device, seq)
) STRICT, WITHOUT ROWID;
