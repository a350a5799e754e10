"""One long-lived thread per local engine, where all of that engine's torch work runs.

Callers (the worker pool, sync request threads, a batch leader, a preload) hand the work over and
wait for its result, so a model is loaded, warmed up and run on the same thread, whoever asks:

- **CPU:** each thread that runs torch gets its own OpenMP team, and on a small machine those teams'
  spinning threads fight over the cores. Measured with the tiny SD on 2 cores: the same renders ran
  1.5–1.7x slower on a second thread after the first had run them, and at the same speed when one
  thread ran them all (``bench/engine_threads.py``).
- **CUDA:** ``torch.compile(mode="reduce-overhead")`` keeps its CUDA graphs per thread; graphs
  captured at warm-up are only replayed when the same thread serves the requests.

Remote engines do not use this: their calls are network waits that should overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class EngineThread:
    """A daemon thread, started on first use, that runs handed-over calls one at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def ident(self) -> int | None:
        """The thread's id once started (tests and tools check where work ran)."""
        return self._thread.ident if self._thread is not None else None

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on this thread; its result, or its exception raised here.

        Called from this thread itself (an engine's run that loads its model), it runs directly.
        """
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: Future[T] = Future()
        self._started().put((future, fn, args, kwargs))
        return future.result()

    def _started(self) -> queue.SimpleQueue[_Work]:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        return self._work

    def _loop(self) -> None:
        while True:
            future, fn, args, kwargs = self._work.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the caller
                future.set_exception(exc)
