-- The sync server's tables on PostgreSQL; sqlite/0002_sync.sql is its twin.

CREATE TABLE enrollment_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('bus', 'gate')),
    created_ms  bigint NOT NULL,
    expires_ms  bigint NOT NULL,
    used_ms     bigint
);

CREATE TABLE devices (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('bus', 'gate')),
    public_key  bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    enrolled_ms bigint NOT NULL,
    revoked_ms  bigint,
    cursor_seq  bigint NOT NULL CHECK (cursor_seq >= 0),
    cursor_head bytea NOT NULL CHECK (length(cursor_head) = 32),
    synced_ms   bigint,
    refusals    bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 70);

CREATE TABLE records (
    device      text NOT NULL REFERENCES devices (id),
    seq         bigint NOT NULL CHECK (seq > 0),
    digest      bytea NOT NULL CHECK (length(digest) = 32),
    raw         bytea NOT NULL,
    event_ms    bigint NOT NULL,
    received_ms bigint NOT NULL,
    PRIMARY KEY (device, seq)
);

CREATE FUNCTION records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'records is append-only';
END $$;

CREATE TRIGGER records_no_change BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION records_append_only();

CREATE TABLE request_nonces (
    device  text NOT NULL,
    nonce   bytea NOT NULL,
    seen_ms bigint NOT NULL,
    PRIMARY KEY (device, nonce)
);
CREATE INDEX request_nonces_seen ON request_nonces (seen_ms);

CREATE TABLE heartbeats (
    device      text PRIMARY KEY REFERENCES devices (id),
    received_ms bigint NOT NULL,
    body        bytea NOT NULL
);

CREATE TABLE package_keys (
    key_id      bytea PRIMARY KEY CHECK (length(key_id) = 8),
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    private_pem bytea NOT NULL,
    created_ms  bigint NOT NULL,
    retired_ms  bigint
);

CREATE TABLE packages (
    kind       text NOT NULL CHECK (kind IN ('tariff', 'keyset', 'config')),
    version    bigint NOT NULL CHECK (version > 0),
    body       bytea NOT NULL,
    created_ms bigint NOT NULL,
    PRIMARY KEY (kind, version)
);

CREATE TABLE ticket_uses (
    token   text PRIMARY KEY,
    device  text NOT NULL,
    seq     bigint NOT NULL,
    used_ms bigint NOT NULL
);

CREATE TABLE ticket_alerts (
    token        text NOT NULL,
    device       text NOT NULL,
    seq          bigint NOT NULL,
    used_ms      bigint NOT NULL,
    first_device text NOT NULL,
    first_seq    bigint NOT NULL,
    PRIMARY KEY (device, seq)
);
