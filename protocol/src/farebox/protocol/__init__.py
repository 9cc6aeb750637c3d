"""farebox.protocol: the pure contract shared by the validator agent and the sync server."""
