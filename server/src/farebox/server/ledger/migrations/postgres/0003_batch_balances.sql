-- Balances move once per posted batch on both stores (SQLite's row trigger is gone: see
-- sqlite/0003_batch_balances.sql). Here the statement trigger stays, and its balance
-- update now names the touched accounts by their key: joined only to the summed moves,
-- the planner hashed them and scanned every account for each batch, a cost that grew with
-- the number of riders (half the posting time at 20,000 accounts).
--
-- Fare days are marked for settlement when they close, all of a day's rider days in one
-- statement (writes.close_fare_days), instead of by every posting: a tap into a day still
-- open marks nothing, and only a late tap or reversal into a closed day marks its day
-- again. Every day up to the latest one with postings was marked by the old trigger.
CREATE TABLE fare_day_close (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    closed_through text NOT NULL
);

INSERT INTO fare_day_close (closed_through)
SELECT coalesce(max(fare_day), '0001-01-01') FROM transfers;

CREATE OR REPLACE FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = auto AS $$
DECLARE
    ids text[];
    currencies text[];
    touched bigint;
    posted_moves bigint[];
    held_debits bigint[];
    held_credits bigint[];
    closed text;
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
    WHERE a.id = ANY (ids) AND a.id = m.account AND a.currency = m.currency;
    GET DIAGNOSTICS touched = ROW_COUNT;
    IF touched <> cardinality(ids) THEN
        RAISE EXCEPTION 'a transfer names an unknown account or one of another currency'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- A rider's fare or fare reversal in a closed day changes what its settlement saw:
    -- mark the day again. The close row is share-locked so that a closing waits for this
    -- transaction and then sees its rows, or this one waits for the closing and marks.
    SELECT closed_through INTO closed FROM fare_day_close FOR SHARE;
    INSERT INTO fare_days (account, fare_day)
    SELECT account, fare_day FROM (
        SELECT debit AS account, fare_day FROM inserted
        WHERE kind = 'fare' AND phase IN ('single', 'post') AND fare_day <= closed
          AND starts_with(debit, 'rider:')
        UNION
        SELECT credit, fare_day FROM inserted
        WHERE kind = 'reversal' AND fare_day <= closed AND starts_with(credit, 'rider:')
    ) changed
    ORDER BY account, fare_day
    ON CONFLICT (account, fare_day) DO UPDATE SET dirty = true WHERE NOT fare_days.dirty;
    RETURN NULL;
END $$;

-- A record names its device. As a foreign key that was checked per row, a query and a lock
-- of the device row for each of a batch's records: four fifths of the time to store them.
-- It is now one check per insert statement, and devices, which records name, are revoked
-- but never deleted. (SQLite checks its foreign key per row at little cost and keeps it.)
ALTER TABLE records DROP CONSTRAINT records_device_fkey;

CREATE FUNCTION records_devices_exist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT device FROM inserted) n
               WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = n.device)) THEN
        RAISE EXCEPTION 'a record names an unknown device'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER records_devices AFTER INSERT ON records
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION records_devices_exist();

CREATE FUNCTION devices_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'devices are revoked, never deleted: their records name them';
END $$;

CREATE TRIGGER devices_kept BEFORE DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_kept();
