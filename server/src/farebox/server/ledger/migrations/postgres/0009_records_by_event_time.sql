-- Taps per minute (reports.records_per_minute, the operator API's taps-per-minute report)
-- count a day's records by their event time. Without an index that read every record ever
-- stored, on SQLite on the store's one thread, while uploads waited. Event times grow as
-- the day goes, so records go in near the index's end.
CREATE INDEX records_event_time ON records (event_ms);
