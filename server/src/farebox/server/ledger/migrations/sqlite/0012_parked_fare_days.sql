-- A rider day that settlement cannot rate (no tariff in force at a tap, no rule for a leg,
-- a rider category the tariff lacks) is parked: it keeps the reason and the version of
-- the rules that failed it, and is no longer dirty, so that it stops coming first among
-- the due days at every settlement while the days after it wait. A fare or a reversal
-- posted into it marks it dirty again, as it marks any closed day; newer rules (a
-- tariff published since) mark it dirty at the next settlement (parking.release); the
-- settlement that rates it clears both. The partial index holds the parked days only.
ALTER TABLE fare_days ADD COLUMN parked_reason TEXT;
ALTER TABLE fare_days ADD COLUMN parked_rules INTEGER
    CHECK ((parked_rules IS NULL) = (parked_reason IS NULL));
CREATE INDEX fare_days_parked ON fare_days (parked_rules) WHERE parked_reason IS NOT NULL;
