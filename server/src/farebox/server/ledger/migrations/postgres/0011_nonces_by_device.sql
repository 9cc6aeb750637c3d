-- A device forgets only its own old request nonces (devices.remember_nonce), found through
-- the key (device, nonce): on PostgreSQL, deleting every device's old nonces made each
-- upload's transaction wait for the one before it. Nothing reads nonces by time any more.
DROP INDEX request_nonces_seen;
