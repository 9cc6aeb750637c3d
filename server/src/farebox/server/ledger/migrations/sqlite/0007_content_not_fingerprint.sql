-- A re-sent transfer is told from a different one under the same key by comparing its
-- stored content, column by column (writes.post_transfers), not a stored hash of it:
-- making the hash cost each posting about 5 us on the server. The column had a CHECK,
-- which SQLite cannot drop with the column, so the table is rebuilt with its rows, ids,
-- indexes and triggers as in 0005 (the store runs migrations with foreign key enforcement
-- off and checks the keys before it commits). Every other CHECK and key is as before.

CREATE TABLE transfers_rebuilt (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind = 'fare' OR kind = 'top_up' OR kind = 'adjustment'
                                     OR kind = 'refund' OR kind = 'reversal'),
    phase       TEXT NOT NULL CHECK (phase = 'single' OR phase = 'pending' OR phase = 'post'
                                     OR phase = 'void'),
    debit       TEXT NOT NULL,
    credit      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0 OR (amount = 0 AND kind = 'fare')),
    event_ms    INTEGER NOT NULL,
    posted_ms   INTEGER NOT NULL,
    reference   TEXT,
    fare_day    TEXT,
    device      TEXT,
    seq         INTEGER,
    stop        TEXT,
    category    TEXT,
    origin      TEXT REFERENCES transfers (key),
    timeout_ms  INTEGER,
    FOREIGN KEY (debit, currency) REFERENCES accounts (id, currency),
    FOREIGN KEY (credit, currency) REFERENCES accounts (id, currency),
    CHECK (debit <> credit),
    CHECK ((device IS NULL) = (seq IS NULL)),
    -- One fare posting per tap: see 0001.
    CHECK (device IS NULL OR key = 'tap:' || device || ':' || seq),
    CHECK (kind <> 'fare' OR phase = 'post' OR phase = 'void' OR device IS NOT NULL),
    CHECK ((phase = 'post' OR phase = 'void' OR kind = 'reversal') = (origin IS NOT NULL)),
    CHECK ((phase = 'pending') = (timeout_ms IS NOT NULL))
) STRICT;

INSERT INTO transfers_rebuilt (id, key, kind, phase, debit, credit, currency,
                               amount, event_ms, posted_ms, reference, fare_day, device, seq,
                               stop, category, origin, timeout_ms)
SELECT id, key, kind, phase, debit, credit, currency,
       amount, event_ms, posted_ms, reference, fare_day, device, seq,
       stop, category, origin, timeout_ms
FROM transfers ORDER BY id;

DROP TABLE transfers;
ALTER TABLE transfers_rebuilt RENAME TO transfers;

-- A pending transfer is resolved once; a transfer is reversed once.
CREATE UNIQUE INDEX transfers_origin ON transfers (origin) WHERE origin IS NOT NULL;
CREATE INDEX transfers_debit_day ON transfers (debit, fare_day);
CREATE INDEX transfers_credit_day ON transfers (credit, fare_day);
-- A day's transfers, for its revenue report: appended in order, as days come one by one.
CREATE INDEX transfers_fare_day ON transfers (fare_day) WHERE fare_day IS NOT NULL;

CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers is append-only');
END;

CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers is append-only');
END;
