"""Which diffusers pipelines stay loaded: a memory budget per device, least recently used evicted.

Every :class:`~imagehub.engines.diffusers.DiffusersEngine` reports to one :class:`Residency`
(:data:`RESIDENCY`, configured at start from ``IMAGEHUB_MODEL_MEMORY_BUDGET_GB``). Before a load,
idle, unpinned models on the same device are unloaded, least recently used first, until the new one
fits; a model that is running (``in_use``) is never unloaded under it, and the load waits for one to
finish. The lock here guards bookkeeping only: loading one model never holds up requests for
another one that is resident.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from imagehub.errors import ModelUnavailable

log = logging.getLogger(__name__)

GIB = 1 << 30


class Resident(Protocol):
    """What the residency needs of a model: its device, whether it is pinned, how to unload it."""

    source: str
    pinned: bool

    @property
    def device(self) -> str: ...

    def unload(self) -> None: ...


class Residency:
    """Loaded models per device within ``budget_bytes`` (None: no budget), LRU first out."""

    def __init__(self, budget_bytes: int | None = None, wait_seconds: float = 300.0) -> None:
        self.budget_bytes = budget_bytes
        self.wait_seconds = wait_seconds
        self._sizes: OrderedDict[Resident, int] = OrderedDict()  # least recently used first
        self._in_use: dict[Resident, int] = {}
        self._changed = threading.Condition()
        self.evictions = 0

    def configure(self, budget_gb: float | None) -> None:
        with self._changed:
            self.budget_bytes = int(budget_gb * GIB) if budget_gb else None

    # ---- loading ------------------------------------------------------------------------------

    def make_room(self, model: Resident, size: int) -> None:
        """Unload idle models on ``model``'s device until ``size`` more bytes fit the budget."""
        deadline = time.monotonic() + self.wait_seconds
        with self._changed:
            budget = self.budget_bytes
            if budget is None:
                return
            if size > budget:
                raise ModelUnavailable(
                    f"{model.source} {_needs(model, size)}, more than the whole "
                    f"model memory budget ({budget / GIB:.2f} GiB); raise IMAGEHUB_MODEL_MEMORY_BUDGET_GB"
                )
            while self._used(model.device, besides=model) + size > budget:
                victim = self._victim(model)
                if victim is not None:
                    self._evict(victim)
                    continue
                pinned = self._pinned(model)
                if pinned + size > budget:  # waiting cannot help: pinned models never leave
                    raise ModelUnavailable(
                        f"{model.source} {_needs(model, size)} and the pinned models on "
                        f"{model.device} take {pinned / GIB:.2f} of the {budget / GIB:.2f} GiB "
                        "model memory budget; raise IMAGEHUB_MODEL_MEMORY_BUDGET_GB or pin fewer "
                        "(IMAGEHUB_PRELOAD_MODELS)"
                    )
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise ModelUnavailable(
                        f"{model.source} does not fit the model memory budget while the "
                        f"models loaded on {model.device} are busy or pinned"
                    )

    def loaded(self, model: Resident, size: int) -> None:
        """``model`` is now loaded and takes ``size`` bytes (the most recently used)."""
        with self._changed:
            self._sizes[model] = size
            self._sizes.move_to_end(model)
            self._changed.notify_all()  # a copy of it may have gone: less may be used

    def unloaded(self, model: Resident) -> None:
        with self._changed:
            self._sizes.pop(model, None)
            self._changed.notify_all()

    # ---- use ----------------------------------------------------------------------------------

    def acquire(self, model: Resident) -> None:
        """``model`` starts running: it is the most recently used and cannot be evicted."""
        with self._changed:
            self._in_use[model] = self._in_use.get(model, 0) + 1
            if model in self._sizes:
                self._sizes.move_to_end(model)

    @contextmanager
    def in_use(self, model: Resident) -> Iterator[None]:
        """``acquire`` for the block, then ``release``."""
        self.acquire(model)
        try:
            yield
        finally:
            self.release(model)

    def release(self, model: Resident) -> None:
        with self._changed:
            count = self._in_use.get(model, 0) - 1
            if count > 0:
                self._in_use[model] = count
            else:
                self._in_use.pop(model, None)
            self._changed.notify_all()

    # ---- reading ------------------------------------------------------------------------------

    def resident(self) -> list[str]:
        """Sources of the loaded models, least recently used first."""
        with self._changed:
            return [model.source for model in self._sizes]

    def devices(self) -> dict[str, tuple[int, int]]:
        """Per device: (models loaded, bytes they take)."""
        with self._changed:
            out: dict[str, tuple[int, int]] = {}
            for model, size in self._sizes.items():
                count, total = out.get(model.device, (0, 0))
                out[model.device] = (count + 1, total + size)
            return out

    def used_bytes(self, device: str) -> int:
        with self._changed:
            return self._used(device)

    # ---- inside the lock ----------------------------------------------------------------------

    def _used(self, device: str, besides: Resident | None = None) -> int:
        return sum(size for m, size in self._sizes.items() if m.device == device and m is not besides)

    def _pinned(self, model: Resident) -> int:
        return sum(size for m, size in self._sizes.items()
                   if m.device == model.device and m.pinned and m is not model)

    def _victim(self, model: Resident) -> Resident | None:
        for other in self._sizes:  # least recently used first
            if other is not model and other.device == model.device and not other.pinned \
                    and not self._in_use.get(other):
                return other
        return None

    def _evict(self, victim: Resident) -> None:
        log.info("unloading %s to make room (model memory budget)", victim.source)
        del self._sizes[victim]
        self.evictions += 1
        victim.unload()


def _needs(model: Resident, size: int) -> str:
    copies = getattr(model, "replicas", 1)
    return f"needs about {size / GIB:.2f} GiB" + (f" ({copies} copies)" if copies > 1 else "")


RESIDENCY = Residency()
"""The process's residency; ``Hub`` configures its budget from the settings."""
