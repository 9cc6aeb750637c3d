"""farebox.server.sync: devices, exactly-once ingest and signed packages, without HTTP."""
