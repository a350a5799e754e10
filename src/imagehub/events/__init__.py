"""Publish / subscribe of generation events; SSE framing lives in ``imagehub.api``."""
