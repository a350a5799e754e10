"""HTTP: the app factory, routes, SSE framing. The only package that imports FastAPI."""
