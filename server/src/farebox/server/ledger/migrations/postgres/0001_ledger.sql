-- The ledger's schema on PostgreSQL; sqlite/0001_ledger.sql is its twin. Balances are kept
-- by a statement trigger from the transfers themselves, so they equal the replay of the
-- transfers by construction; `ledger verify` checks it anyway. The same trigger checks, for
-- the whole statement at once, that each transfer's accounts exist in its currency and
-- that its origin exists: the foreign keys SQLite uses cost a trigger call per row and key
-- here, most of a batch's time.

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
) WITH (fillfactor = 70);  -- room for balance updates to stay on their page (HOT)

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
    origin      text,
    timeout_ms  bigint,
    CHECK (debit <> credit),
    CHECK ((device IS NULL) = (seq IS NULL)),
    -- One fare posting per tap: a tap's fare is keyed by its (device, seq) and the key is
    -- unique, so a second fare for the same tap cannot exist under any key. This costs no
    -- index beyond the key's own (a second random-order index halved ingest on SQLite).
    CHECK (device IS NULL OR key = 'tap:' || device || ':' || seq),
    CHECK (kind <> 'fare' OR phase IN ('post', 'void') OR device IS NOT NULL),
    CHECK ((phase IN ('post', 'void') OR kind = 'reversal') = (origin IS NOT NULL)),
    CHECK ((phase = 'pending') = (timeout_ms IS NOT NULL))
);

-- A pending transfer is resolved once; a transfer is reversed once.
CREATE UNIQUE INDEX transfers_origin ON transfers (origin) WHERE origin IS NOT NULL;
CREATE INDEX transfers_debit_day ON transfers (debit, fare_day);
CREATE INDEX transfers_credit_day ON transfers (credit, fare_day);
-- A day's transfers, for its revenue report: appended in order, as days come one by one.
CREATE INDEX transfers_fare_day ON transfers (fare_day) WHERE fare_day IS NOT NULL;

-- The sessions force custom plans (for the array statements sent from Python); this
-- function's statements are the same shape every batch, so they keep their cached plans:
-- planning them on every call cost more than a third of a small batch.
CREATE FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = auto AS $$
DECLARE
    ids text[];
    currencies text[];
    touched bigint;
    posted_moves bigint[];
    held_debits bigint[];
    held_credits bigint[];
BEGIN
    -- The moves of the inserted rows, summed per account. A post or void releases what its
    -- pending transfer held, found by key through the unique index.
    SELECT array_agg(account ORDER BY account), array_agg(currency ORDER BY account),
           array_agg(posted ORDER BY account), array_agg(held_debit ORDER BY account),
           array_agg(held_credit ORDER BY account)
    INTO ids, currencies, posted_moves, held_debits, held_credits
    FROM (
        SELECT account, currency, sum(posted) AS posted, sum(held_debit) AS held_debit,
               sum(held_credit) AS held_credit
        FROM (
            SELECT n.debit AS account, n.currency,
                   CASE WHEN n.phase IN ('single', 'post') THEN -n.amount ELSE 0 END AS posted,
                   CASE n.phase WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
                       ELSE -(SELECT h.amount FROM transfers h WHERE h.key = n.origin) END
                       AS held_debit,
                   0 AS held_credit
            FROM inserted n
            UNION ALL
            SELECT n.credit, n.currency,
                   CASE WHEN n.phase IN ('single', 'post') THEN n.amount ELSE 0 END,
                   0,
                   CASE n.phase WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
                       ELSE -(SELECT h.amount FROM transfers h WHERE h.key = n.origin) END
            FROM inserted n
        ) moves
        GROUP BY account, currency
    ) summed;
    IF EXISTS (SELECT 1 FROM inserted n WHERE n.origin IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM transfers h WHERE h.key = n.origin)) THEN
        RAISE EXCEPTION 'a transfer names an origin that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- Lock the touched accounts in one order, so two servers posting overlapping batches
    -- wait for each other instead of deadlocking.
    PERFORM 1 FROM accounts WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    UPDATE accounts a
    SET posted = a.posted + m.posted,
        pending_debits = a.pending_debits + m.held_debit,
        pending_credits = a.pending_credits + m.held_credit
    FROM unnest(ids, currencies, posted_moves, held_debits, held_credits)
        AS m (account, currency, posted, held_debit, held_credit)
    WHERE a.id = m.account AND a.currency = m.currency;
    GET DIAGNOSTICS touched = ROW_COUNT;
    IF touched <> cardinality(ids) THEN
        RAISE EXCEPTION 'a transfer names an unknown account or one of another currency'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- A rider's fare or fare reversal changes its fare day: settlement must see it again.
    INSERT INTO fare_days (account, fare_day)
    SELECT account, fare_day FROM (
        SELECT debit AS account, fare_day FROM inserted
        WHERE kind = 'fare' AND phase IN ('single', 'post') AND fare_day IS NOT NULL
          AND starts_with(debit, 'rider:')
        UNION
        SELECT credit, fare_day FROM inserted
        WHERE kind = 'reversal' AND fare_day IS NOT NULL AND starts_with(credit, 'rider:')
    ) changed
    ORDER BY account, fare_day
    ON CONFLICT (account, fare_day) DO UPDATE SET dirty = true WHERE NOT fare_days.dirty;
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

-- Accounts are closed by policy, never deleted: transfers name them.
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts
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

-- One row per rider fare day with postings. `dirty` is set by every fare or fare reversal
-- posted for the day and cleared by the settlement that saw them all; revision counts the
-- settlements, and a settlement claims revision n+1 only if it is still n. No foreign
-- key: rows are made from transfers whose accounts were checked, and a per-row check would
-- cost a rider's first tap of the day as much as the tap itself.
CREATE TABLE fare_days (
    account    text NOT NULL,
    fare_day   text NOT NULL,
    revision   bigint NOT NULL DEFAULT 0 CHECK (revision >= 0),
    dirty      boolean NOT NULL DEFAULT true,
    settled_ms bigint,
    PRIMARY KEY (account, fare_day)
);

-- The days due for settlement, and only those.
CREATE INDEX fare_days_due ON fare_days (fare_day) WHERE dirty;
