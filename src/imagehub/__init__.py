"""imagehub: a self-hosted image-generation hub behind the Oxen.ai inference API.

Importing this package is cheap: torch, diffusers and the web framework load lazily.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
