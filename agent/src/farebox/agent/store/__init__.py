"""The agent's state: one SQLite file holding the journal, the caches and rider history."""
