"""Dynamic batching: compatible work of one model, queued rows and waiting sync calls, taken together.

Two generations are compatible when they ask the same model for the same batch key (size class,
ratio, steps, guidance...: :func:`batch_key`); the engine runs them as one call and still gives each
its own seed, progress, cancel and result (``engines.base.BatchingEngine``). A batch starts from the
oldest waiting sync call, else the oldest queued row, and fills up to the model's capacity; a batch
with room waits ``wait_ms`` once and fills again (not on every arrival: each fill reads the model's
queued rows). Sync calls wait in memory (they block an HTTP request); queued rows are claimed from
the queue with the same conditional update as a single claim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from imagehub.db.records import GenerationRecord
from imagehub.jobs.queue import JobQueue, Lane

BATCH_FIELDS = ("aspect_ratio", "resolution", "num_inference_steps", "guidance_scale", "strength")
"""Resolved fields that must be equal for two generations to share a batch."""

KeyOf = Callable[[dict[str, Any]], Hashable]


def batch_key(resolved: dict[str, Any]) -> Hashable:
    """What must match for two generations of one model to run as one batch.

    Whether a negative prompt or an input image is given matters too (a pipeline takes them for
    the whole batch or not at all); their text and pixels do not.
    """
    values = tuple(_frozen(resolved.get(name)) for name in BATCH_FIELDS)
    return (*values, bool(resolved.get("negative_prompt")), bool(resolved.get("input_image")))


def _frozen(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class BatchPolicy:
    """How big a batch may grow and how long its first job waits for company."""

    max_size: int = 1
    """Images per engine call, at most (a batching engine's; other engines run one job at a time)."""
    wait_ms: float = 0.0
    """How long a batch that is not full waits for more compatible work."""


@dataclass(eq=False)
class SyncCall:
    """A sync request waiting to run in a batch; its result arrives on ``future``."""

    model: str
    key: Hashable
    request: Any
    """The engine request (``engines.base.EngineRequest``)."""
    num_images: int = 1
    future: Future[Any] = field(default_factory=Future)
    taken: bool = False
    gone: threading.Event = field(default_factory=threading.Event)
    """Set when the caller's client has closed its connection: the call is withdrawn if it still
    waits, or leaves its batch at the next step."""


@dataclass
class Batch:
    """Compatible work of one model: claimed queued rows and sync calls."""

    model: str
    key: Hashable
    rows: list[GenerationRecord] = field(default_factory=list)
    calls: list[SyncCall] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(r.num_images for r in self.rows) + sum(c.num_images for c in self.calls)


class Batcher:
    """Forms batches from waiting sync calls and the queue (see the module docstring)."""

    def __init__(self, queue: JobQueue, policy: BatchPolicy,
                 capacity: Callable[[str], int] | None = None, key_of: KeyOf = batch_key,
                 lane: Callable[[], Lane] | None = None) -> None:
        """``lane``: the queued rows this batcher's pool takes (None: all)."""
        self._queue, self._policy, self._key_of = queue, policy, key_of
        self._lane = lane
        self._capacity = capacity or (lambda model: policy.max_size)
        self._pending: list[SyncCall] = []
        self._lock = threading.Lock()  # guards the waiting sync calls

    def offer(self, call: SyncCall) -> None:
        """A sync call waits for a batch."""
        with self._lock:
            self._pending.append(call)

    def collect(self, lead: SyncCall | None = None) -> Batch | None:
        """The next batch (``lead`` first when given and still waiting), or None when idle."""
        # 1. The first piece of work sets the model and key
        batch = self._start(lead)
        if batch is None:
            return None
        # 2. Fill with compatible work; if there is room, wait out ``wait_ms`` once and fill
        #    again (not on every arrival: each fill reads the queued rows of the model)
        limit = max(1, self._capacity(batch.model))
        self._fill(batch, limit)
        if batch.size < limit and self._policy.wait_ms > 0:
            time.sleep(self._policy.wait_ms / 1000)
            self._fill(batch, limit)
        return batch

    def top_up(self, batch: Batch) -> Batch:
        """More compatible work for ``batch``, up to its capacity, without waiting: what arrived
        while the batch waited for the engine. Returns the added work alone."""
        added = Batch(batch.model, batch.key)
        limit = max(1, self._capacity(batch.model)) - batch.size
        if limit > 0:
            self._fill(added, limit)
        batch.rows += added.rows
        batch.calls += added.calls
        return added

    def _start(self, lead: SyncCall | None) -> Batch | None:
        with self._lock:
            call = lead if lead is not None and not lead.taken else None
            if call is None and lead is None and self._pending:
                call = self._pending[0]
            if call is not None:
                self._take(call)
                return Batch(call.model, call.key, calls=[call])
        if lead is not None:
            return None
        row = self._queue.claim(self._lane() if self._lane else None)
        if row is None:
            return None
        return Batch(row.model_name, self._key_of(row.resolved), rows=[row])

    def _fill(self, batch: Batch, limit: int) -> None:
        with self._lock:
            for call in list(self._pending):
                if call.model == batch.model and call.key == batch.key \
                        and batch.size + call.num_images <= limit:
                    self._take(call)
                    batch.calls.append(call)
        room = limit - batch.size
        if room > 0:
            batch.rows += self._queue.claim_batch(batch.model, batch.key, room, self._key_of)

    def withdraw(self, call: SyncCall) -> bool:
        """Take ``call`` back if no batch has taken it yet (its client went away)."""
        with self._lock:
            if call.taken:
                return False
            self._pending.remove(call)
            return True

    def _take(self, call: SyncCall) -> None:
        call.taken = True
        self._pending.remove(call)
