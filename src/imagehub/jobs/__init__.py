"""Generation records, the queue and the worker loop."""
