"""Engines behind one contract (``base.Engine``): builtin, diffusers, remote providers."""
