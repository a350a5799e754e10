"""Model id → model card, its request_schema, and the engine that serves it."""
