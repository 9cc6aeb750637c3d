-- Nothing changes on SQLite: its transfers name their accounts by foreign keys on
-- (id, currency), which need the unique pair that PostgreSQL's step 0006 drops.
-- The statement below only gives the step a body (a step records its version either way).
SELECT 1;
