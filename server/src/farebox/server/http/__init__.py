"""farebox.server.http: the aiohttp shell around the sync and ledger cores."""
