-- The same CHECK constraints on accounts and transfers, with each list of allowed names
-- written as comparisons joined by OR instead of `IN (...)`. SQLite builds a temporary
-- table for an IN list of more than two values every time a statement runs, which cost
-- about 3 us for each of a transfer's two lists, a fifth of the cost of storing the row.
-- A CHECK cannot be altered in SQLite, so both tables are rebuilt with their rows, ids,
-- indexes and triggers, as in SQLite's procedure for other schema changes (the store
-- runs migrations with foreign key enforcement off and checks the keys before it
-- commits). Every other CHECK and key is as before.

CREATE TABLE accounts_rebuilt (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind = 'rider' OR kind = 'revenue'
                        OR kind = 'clearing' OR kind = 'adjustment' OR kind = 'write_off'
                        OR kind = 'liability'),
    currency        TEXT NOT NULL CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]'),
    credit_limit    INTEGER NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    category        TEXT,
    posted          INTEGER NOT NULL DEFAULT 0,
    pending_debits  INTEGER NOT NULL DEFAULT 0 CHECK (pending_debits >= 0),
    pending_credits INTEGER NOT NULL DEFAULT 0 CHECK (pending_credits >= 0),
    limit_blocked   INTEGER NOT NULL DEFAULT 0 CHECK (limit_blocked = 0 OR limit_blocked = 1),
    opened_ms       INTEGER NOT NULL,
    UNIQUE (id, currency),
    CHECK (credit_limit = 0 OR kind = 'rider'),
    CHECK (NOT limit_blocked OR kind = 'rider')
) STRICT, WITHOUT ROWID;

INSERT INTO accounts_rebuilt (id, kind, currency, credit_limit, category, posted,
                              pending_debits, pending_credits, limit_blocked, opened_ms)
SELECT id, kind, currency, credit_limit, category, posted,
       pending_debits, pending_credits, limit_blocked, opened_ms
FROM accounts;

DROP TABLE accounts;
ALTER TABLE accounts_rebuilt RENAME TO accounts;

-- Accounts are closed by policy, never deleted: transfers name them.
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts
BEGIN
    SELECT RAISE(ABORT, 'accounts are never deleted');
END;

CREATE TABLE transfers_rebuilt (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
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

INSERT INTO transfers_rebuilt (id, key, fingerprint, kind, phase, debit, credit, currency,
                               amount, event_ms, posted_ms, reference, fare_day, device, seq,
                               stop, category, origin, timeout_ms)
SELECT id, key, fingerprint, kind, phase, debit, credit, currency,
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
