-- The ledger's schema on SQLite; postgres/0001_ledger.sql is its twin. Balances are kept
-- by a row trigger from the transfers themselves, so they equal the replay of the
-- transfers by construction; `ledger verify` checks it anyway.

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN
                        ('rider', 'revenue', 'clearing', 'adjustment', 'write_off', 'liability')),
    currency        TEXT NOT NULL CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]'),
    credit_limit    INTEGER NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    category        TEXT,
    posted          INTEGER NOT NULL DEFAULT 0,
    pending_debits  INTEGER NOT NULL DEFAULT 0 CHECK (pending_debits >= 0),
    pending_credits INTEGER NOT NULL DEFAULT 0 CHECK (pending_credits >= 0),
    limit_blocked   INTEGER NOT NULL DEFAULT 0 CHECK (limit_blocked IN (0, 1)),
    opened_ms       INTEGER NOT NULL,
    UNIQUE (id, currency),
    CHECK (credit_limit = 0 OR kind = 'rider'),
    CHECK (NOT limit_blocked OR kind = 'rider')
) STRICT, WITHOUT ROWID;

CREATE TABLE transfers (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
    kind        TEXT NOT NULL CHECK (kind IN ('fare', 'top_up', 'adjustment', 'refund', 'reversal')),
    phase       TEXT NOT NULL CHECK (phase IN ('single', 'pending', 'post', 'void')),
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
    -- One fare posting per tap: a tap's fare is keyed by its (device, seq) and the key is
    -- unique, so a second fare for the same tap cannot exist under any key. This costs no
    -- index beyond the key's own (a second random-order index halved ingest on SQLite).
    CHECK (device IS NULL OR key = 'tap:' || device || ':' || seq),
    CHECK (kind <> 'fare' OR phase IN ('post', 'void') OR device IS NOT NULL),
    CHECK ((phase IN ('post', 'void') OR kind = 'reversal') = (origin IS NOT NULL)),
    CHECK ((phase = 'pending') = (timeout_ms IS NOT NULL))
) STRICT;

-- A pending transfer is resolved once; a transfer is reversed once.
CREATE UNIQUE INDEX transfers_origin ON transfers (origin) WHERE origin IS NOT NULL;
CREATE INDEX transfers_debit_day ON transfers (debit, fare_day);
CREATE INDEX transfers_credit_day ON transfers (credit, fare_day);
-- A day's transfers, for its revenue report: appended in order, as days come one by one.
CREATE INDEX transfers_fare_day ON transfers (fare_day) WHERE fare_day IS NOT NULL;

CREATE TRIGGER transfers_apply AFTER INSERT ON transfers
BEGIN
    UPDATE accounts
    SET posted = posted - CASE WHEN NEW.phase IN ('single', 'post') THEN NEW.amount ELSE 0 END,
        pending_debits = pending_debits + CASE NEW.phase
            WHEN 'pending' THEN NEW.amount
            WHEN 'single' THEN 0
            ELSE -(SELECT amount FROM transfers WHERE key = NEW.origin) END
    WHERE id = NEW.debit;
    UPDATE accounts
    SET posted = posted + CASE WHEN NEW.phase IN ('single', 'post') THEN NEW.amount ELSE 0 END,
        pending_credits = pending_credits + CASE NEW.phase
            WHEN 'pending' THEN NEW.amount
            WHEN 'single' THEN 0
            ELSE -(SELECT amount FROM transfers WHERE key = NEW.origin) END
    WHERE id = NEW.credit;
    -- A rider's fare or fare reversal changes its fare day: settlement must see it again.
    INSERT INTO fare_days (account, fare_day)
    SELECT CASE NEW.kind WHEN 'reversal' THEN NEW.credit ELSE NEW.debit END, NEW.fare_day
    WHERE NEW.fare_day IS NOT NULL AND (
        (NEW.kind = 'fare' AND NEW.phase IN ('single', 'post')
         AND substr(NEW.debit, 1, 6) = 'rider:')
        OR (NEW.kind = 'reversal' AND substr(NEW.credit, 1, 6) = 'rider:'))
    ON CONFLICT (account, fare_day) DO UPDATE SET dirty = 1 WHERE NOT fare_days.dirty;
END;

CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers is append-only');
END;

CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers is append-only');
END;

-- Accounts are closed by policy, never deleted: transfers name them.
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts
BEGIN
    SELECT RAISE(ABORT, 'accounts are never deleted');
END;

CREATE TABLE blocks (
    token    TEXT NOT NULL,
    reason   TEXT NOT NULL CHECK (reason IN ('balance', 'lost', 'stolen', 'fraud', 'other')),
    note     TEXT,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (token, reason)
) STRICT, WITHOUT ROWID;

CREATE TABLE stoplist_changes (
    version  INTEGER PRIMARY KEY CHECK (version > 0),
    token    TEXT NOT NULL,
    listed   INTEGER NOT NULL CHECK (listed IN (0, 1)),
    checksum BLOB NOT NULL CHECK (length(checksum) = 32),
    at_ms    INTEGER NOT NULL
) STRICT;

CREATE TRIGGER stoplist_changes_no_update BEFORE UPDATE ON stoplist_changes
BEGIN
    SELECT RAISE(ABORT, 'stoplist_changes is append-only');
END;

CREATE TRIGGER stoplist_changes_no_delete BEFORE DELETE ON stoplist_changes
BEGIN
    SELECT RAISE(ABORT, 'stoplist_changes is append-only');
END;

CREATE TABLE stoplist_head (
    only_row INTEGER PRIMARY KEY DEFAULT 1 CHECK (only_row = 1),
    version  INTEGER NOT NULL,
    checksum BLOB NOT NULL CHECK (length(checksum) = 32)
) STRICT;

INSERT INTO stoplist_head (version, checksum) VALUES (0, zeroblob(32));

-- One row per rider fare day with postings. `dirty` is set by every fare or fare reversal
-- posted for the day and cleared by the settlement that saw them all; revision counts the
-- settlements, and a settlement claims revision n+1 only if it is still n. No foreign
-- key: rows are made from transfers whose accounts were checked, and a per-row check would
-- cost a rider's first tap of the day as much as the tap itself.
CREATE TABLE fare_days (
    account    TEXT NOT NULL,
    fare_day   TEXT NOT NULL,
    revision   INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0),
    dirty      INTEGER NOT NULL DEFAULT 1 CHECK (dirty IN (0, 1)),
    settled_ms INTEGER,
    PRIMARY KEY (account, fare_day)
) STRICT;

-- The days due for settlement, and only those.
CREATE INDEX fare_days_due ON fare_days (fare_day) WHERE dirty;
