-- The ledger's schema on PostgreSQL; sqlite/0001_ledger.sql is its twin. Balances are kept
-- by a statement trigger from the transfers themselves, so they equal the replay of the
-- transfers by construction; `ledger verify` checks it anyway.

CREATE TABLE accounts (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN
                        ('rider', 'revenue', 'clearing', 'adjustment', 'write_off', 'liability')),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    credit_limit    bigint NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    category        text,
    posted          bigint NOT NULL DEFAULT 0,
    pending_debits  bigint NOT NULL DEFAULT 0 CHECK (pending_debits >= 0),
    pending_credits bigint NOT NULL DEFAULT 0 CHECK (pending_credits >= 0),
    limit_blocked   boolean NOT NULL DEFAULT false,
    opened_ms       bigint NOT NULL,
    UNIQUE (id, currency),
    CHECK (credit_limit = 0 OR kind = 'rider'),
    CHECK (NOT limit_blocked OR kind = 'rider')
);

-- Holds only the rider accounts whose stoplist flag disagrees with their balance: after a
-- posting, those are the ones to add to or remove from the stoplist.
CREATE INDEX accounts_limit_mismatch ON accounts (id)
    WHERE kind = 'rider' AND (posted - pending_debits < -credit_limit) <> limit_blocked;

CREATE TABLE transfers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text NOT NULL UNIQUE,
    fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32),
    kind        text NOT NULL CHECK (kind IN ('fare', 'top_up', 'adjustment', 'refund', 'reversal')),
    phase       text NOT NULL CHECK (phase IN ('single', 'pending', 'post', 'void')),
    debit       text NOT NULL,
    credit      text NOT NULL,
    currency    text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0 OR (amount = 0 AND kind = 'fare')),
    event_ms    bigint NOT NULL,
    posted_ms   bigint NOT NULL,
    reference   text,
    fare_day    text,
    device      text,
    seq         bigint,
    stop        text,
    category    text,
    origin      text REFERENCES transfers (key),
    timeout_ms  bigint,
    FOREIGN KEY (debit, currency) REFERENCES accounts (id, currency),
    FOREIGN KEY (credit, currency) REFERENCES accounts (id, currency),
    CHECK (debit <> credit),
    CHECK ((device IS NULL) = (seq IS NULL)),
    CHECK ((phase IN ('post', 'void') OR kind = 'reversal') = (origin IS NOT NULL)),
    CHECK ((phase = 'pending') = (timeout_ms IS NOT NULL))
);

-- One fare posting per tap, whatever key a caller makes up for it.
CREATE UNIQUE INDEX transfers_one_fare_per_tap ON transfers (device, seq) WHERE kind = 'fare';
-- A pending transfer is resolved once; a transfer is reversed once.
CREATE UNIQUE INDEX transfers_origin ON transfers (origin) WHERE origin IS NOT NULL;
CREATE INDEX transfers_debit_day ON transfers (debit, fare_day);
CREATE INDEX transfers_credit_day ON transfers (credit, fare_day);

CREATE FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Lock the touched accounts in one order, so two servers posting overlapping batches
    -- wait for each other instead of deadlocking.
    PERFORM 1 FROM accounts
        WHERE id IN (SELECT debit FROM inserted UNION SELECT credit FROM inserted)
        ORDER BY id FOR UPDATE;
    UPDATE accounts a
    SET posted = a.posted + m.posted,
        pending_debits = a.pending_debits + m.pending_debits,
        pending_credits = a.pending_credits + m.pending_credits
    FROM (
        SELECT account, sum(posted) AS posted, sum(pending_debits) AS pending_debits,
               sum(pending_credits) AS pending_credits
        FROM (
            SELECT n.debit AS account,
                   CASE WHEN n.phase IN ('single', 'post') THEN -n.amount ELSE 0 END AS posted,
                   CASE n.phase WHEN 'pending' THEN n.amount
                                WHEN 'single' THEN 0 ELSE -h.amount END AS pending_debits,
                   0 AS pending_credits
            FROM inserted n LEFT JOIN transfers h ON h.key = n.origin AND n.kind <> 'reversal'
            UNION ALL
            SELECT n.credit,
                   CASE WHEN n.phase IN ('single', 'post') THEN n.amount ELSE 0 END,
                   0,
                   CASE n.phase WHEN 'pending' THEN n.amount
                                WHEN 'single' THEN 0 ELSE -h.amount END
            FROM inserted n LEFT JOIN transfers h ON h.key = n.origin AND n.kind <> 'reversal'
        ) moves
        GROUP BY account
    ) m
    WHERE a.id = m.account;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_apply AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION transfers_apply();

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE TABLE blocks (
    token    text NOT NULL,
    reason   text NOT NULL CHECK (reason IN ('balance', 'lost', 'stolen', 'fraud', 'other')),
    note     text,
    since_ms bigint NOT NULL,
    PRIMARY KEY (token, reason)
);

CREATE TABLE stoplist_changes (
    version  bigint PRIMARY KEY CHECK (version > 0),
    token    text NOT NULL,
    listed   boolean NOT NULL,
    checksum bytea NOT NULL CHECK (length(checksum) = 32),
    at_ms    bigint NOT NULL
);

CREATE TRIGGER stoplist_changes_immutable BEFORE UPDATE OR DELETE ON stoplist_changes
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE TABLE stoplist_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  bigint NOT NULL,
    checksum bytea NOT NULL CHECK (length(checksum) = 32)
);

INSERT INTO stoplist_head (version, checksum) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE TABLE fare_days (
    account    text NOT NULL REFERENCES accounts (id),
    fare_day   text NOT NULL,
    revision   bigint NOT NULL CHECK (revision > 0),
    taps_seen  bigint NOT NULL CHECK (taps_seen >= 0),
    settled_ms bigint NOT NULL,
    PRIMARY KEY (account, fare_day)
);
