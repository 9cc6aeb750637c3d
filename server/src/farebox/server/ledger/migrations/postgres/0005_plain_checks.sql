-- Nothing changes on PostgreSQL. On SQLite this step rewrites the CHECK constraints that
-- listed allowed names with `IN (...)` as comparisons joined by OR, which SQLite runs
-- without building a temporary table per statement; PostgreSQL runs either form alike.
-- The statement below only gives the step a body (a step records its version either way).
SELECT 1;
