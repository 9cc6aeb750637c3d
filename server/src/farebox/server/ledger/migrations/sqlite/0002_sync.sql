-- The sync server's tables on SQLite; postgres/0002_sync.sql is its twin. Devices and
-- their chain cursors, the append-only audit of every record received, enrollment
-- tokens, request nonces (replay refusal), heartbeats, published packages and the keys
-- that sign them, and QR tickets seen on more than one validator.

CREATE TABLE enrollment_tokens (
    token_hash  BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('bus', 'gate')),
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    used_ms     INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('bus', 'gate')),
    public_key  BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    enrolled_ms INTEGER NOT NULL,
    revoked_ms  INTEGER,
    cursor_seq  INTEGER NOT NULL CHECK (cursor_seq >= 0),
    cursor_head BLOB NOT NULL CHECK (length(cursor_head) = 32),
    synced_ms   INTEGER,
    refusals    INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

CREATE TABLE records (
    device      TEXT NOT NULL REFERENCES devices (id),
    seq         INTEGER NOT NULL CHECK (seq > 0),
    digest      BLOB NOT NULL CHECK (length(digest) = 32),
    raw         BLOB NOT NULL,
    event_ms    INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (device, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN
    SELECT RAISE(ABORT, 'records is append-only');
END;

CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN
    SELECT RAISE(ABORT, 'records is append-only');
END;

CREATE TABLE request_nonces (
    device  TEXT NOT NULL,
    nonce   BLOB NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (device, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX request_nonces_seen ON request_nonces (seen_ms);

CREATE TABLE heartbeats (
    device      TEXT PRIMARY KEY REFERENCES devices (id),
    received_ms INTEGER NOT NULL,
    body        BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE package_keys (
    key_id      BLOB PRIMARY KEY CHECK (length(key_id) = 8),
    public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
    private_pem BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    retired_ms  INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE packages (
    kind       TEXT NOT NULL CHECK (kind IN ('tariff', 'keyset', 'config')),
    version    INTEGER NOT NULL CHECK (version > 0),
    body       BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE ticket_uses (
    token   TEXT PRIMARY KEY,
    device  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    used_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE ticket_alerts (
    token        TEXT NOT NULL,
    device       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    used_ms      INTEGER NOT NULL,
    first_device TEXT NOT NULL,
    first_seq    INTEGER NOT NULL,
    PRIMARY KEY (device, seq)
) STRICT, WITHOUT ROWID;
