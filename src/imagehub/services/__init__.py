"""Use cases: generate, enqueue, cancel, list, keys. No HTTP objects here."""
