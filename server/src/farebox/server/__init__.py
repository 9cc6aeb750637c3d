"""farebox.server: the sync server, the double-entry ledger and the operator API."""
