-- Each time the stoplist's version was moved past a version that a device held and this
-- store never reached: the store was restored from a backup, or replaced, after it had
-- published that version. The list itself is unchanged; the versions skipped have no
-- change of their own, so a device holding any of them is behind the head and gets the
-- whole list (docs/server.md, "When the store is full or away").
CREATE TABLE stoplist_renumberings (
    version  INTEGER PRIMARY KEY CHECK (version > 0),
    previous INTEGER NOT NULL CHECK (previous >= 0 AND previous < version),
    device   TEXT NOT NULL REFERENCES devices (id),
    held     INTEGER NOT NULL CHECK (held >= previous AND held < version),
    at_ms    INTEGER NOT NULL
) STRICT;
