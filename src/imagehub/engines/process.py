"""One engine hosted in a child process of its own, so its torch work has a GIL of its own.

Why: a GPU model's Python thread launches thousands of small kernels per call, and torch lets go
of the GIL around each one. In the server's process every launch then waits for the GIL behind
the HTTP, encoding and bookkeeping threads: a convoy. ``bench/engine_isolation.py`` on this
project's 2-core CPU: a small-op-bound model call took 2.5x as long beside a thread running Python
half the time and 159x beside one running it all the time; in a process of its own, 1.1x and 1.2x.

The parent keeps a proxy (:class:`EngineProcess`) and calls the hosted engine's methods by name;
arguments and results travel pickled over a pipe (PIL images pickle as raw pixels). A batch's
step callbacks are relayed without a round trip (the child never waits for the parent, whose
GIL may be busy): the child sends each step and runs on; when the parent's callback raises (a
cancel), the parent sends that exception back, the child's callback for that request raises it
at its next step, and the request's outcome is that exception whatever the child returns, as a
cancel inside a batch is in-process.

Images coming back do not go through the pipe: each one's pixels are put in a shared-memory
block and only its name crosses (:class:`_ResultPickler`); the parent copies them out and frees
the block. Through the pipe, a batch of 16 512² images was 12.6 MB read in 64 KiB chunks under
the server's GIL: 20% of its sampled GIL time under 64 clients.

The child is a ``spawn`` process (a fresh interpreter: CUDA cannot be forked). It ends when told,
when the parent closes the pipe, or when the parent dies (its pipe reaches end of file).
"""

from __future__ import annotations

import importlib
import io
import logging
import multiprocessing
import pickle
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from PIL import Image

from imagehub.engines.base import StepCallback
from imagehub.errors import GenerationFailed

log = logging.getLogger(__name__)

STOP_SECONDS = 10.0
"""How long a stopping child may take to exit before it is killed."""


class EngineProcess:
    """``target`` (``"module:Class"``) built with ``args``/``kwargs`` in a child process."""

    def __init__(self, name: str, target: str, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None, torch_threads: int | None = None) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, name=name, daemon=True,
                                         args=(child_end, target, args, kwargs or {}, torch_threads))
        self._process.start()
        child_end.close()  # the child's end lives in the child: its exit is our end of file
        self._lock = threading.Lock()  # one call at a time over the pipe

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def call(self, method: str, *args: Any, on_steps: list[StepCallback] | None = None) -> Any:
        """``engine.method(*args)`` in the child; its result, or the exception it raised, raised
        here. ``on_steps`` are relayed (appended as the last argument): the method then returns
        one outcome per callback (``BatchingEngine.generate_batch``), and a callback that raised
        makes its outcome that exception."""
        with self._lock:
            try:
                self._conn.send((method, args, None if on_steps is None else len(on_steps)))
                raised: dict[int, Exception] = {}
                while True:
                    kind, *rest = self._conn.recv()
                    if kind == "step":
                        self._step(on_steps or [], raised, *rest)
                    elif kind == "ok":
                        return _with_raised(rest[0], raised) if raised else rest[0]
                    else:
                        raise rest[0]
            except (EOFError, OSError) as exc:
                raise self._died(method) from exc

    def _step(self, on_steps: list[StepCallback], raised: dict[int, Exception], index: int,
              step: int, total: int) -> None:
        """A step the child reported: the parent's callback, and its exception sent back."""
        if index in raised:
            return  # it left the batch: a step the child sent before it heard
        try:
            on_steps[index](step, total)
        except Exception as exc:  # noqa: BLE001 - a cancel (or a failed progress write) goes back
            raised[index] = exc
            self._conn.send(("cancel", index, exc))

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask the child to exit after the call it is running, if any; kill it if that call or
        the exit takes longer than ``timeout`` (the call then fails as its process died)."""
        idle = self._lock.acquire(timeout=timeout)
        try:
            if idle:
                try:
                    self._conn.send(("stop", (), None))
                except OSError:
                    pass  # already gone
                self._process.join(timeout)
            if self._process.is_alive():
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self._process.kill()
                self._process.join()
            if idle:
                self._conn.close()
        finally:
            if idle:
                self._lock.release()

    def _died(self, method: str) -> GenerationFailed:
        self._process.join(STOP_SECONDS)
        return GenerationFailed(f"{self.name} (pid {self.pid}) exited with code "
                                f"{self._process.exitcode} during {method}; see the server log")


def _with_raised(outcomes: list[Any], raised: dict[int, Exception]) -> list[Any]:
    return [raised.get(i, outcome) for i, outcome in enumerate(outcomes)]


# ---- the child ----------------------------------------------------------------------------------


def _serve(conn: Connection, target: str, args: tuple[Any, ...], kwargs: dict[str, Any],
           torch_threads: int | None) -> None:
    """The child's loop: build the engine, then run the calls the parent sends until told to stop
    or the parent is gone."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if torch_threads:  # as many as the server's own torch work would use
        import torch

        torch.set_num_threads(torch_threads)
    module_name, _, class_name = target.partition(":")
    engine = getattr(importlib.import_module(module_name), class_name)(*args, **kwargs)
    while True:
        try:
            method, call_args, steps = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if method == "stop":
            return
        if method == "cancel":
            continue  # sent for a call that ended before it was read
        if steps is not None:
            call_args = (*call_args, _Relay(conn).callbacks(steps))
        try:
            reply: tuple[str, Any] = ("ok", getattr(engine, method)(*call_args))
        except Exception as exc:  # noqa: BLE001 - every outcome goes back to the caller
            reply = ("raise", exc)
        _send(conn, reply)


class _Relay:
    """The child's step callbacks for one call: each step goes to the parent without waiting;
    the cancels the parent has sent back are read before each step."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cancelled: dict[int, Exception] = {}

    def callbacks(self, count: int) -> list[Callable[[int, int], None]]:
        return [self._callback(index) for index in range(count)]

    def _callback(self, index: int) -> Callable[[int, int], None]:
        def on_step(step: int, total: int) -> None:
            while self.conn.poll():  # during a call the parent only sends cancels
                _, cancelled, exc = self.conn.recv()
                self.cancelled[cancelled] = exc
            if index in self.cancelled:
                raise self.cancelled[index]
            self.conn.send(("step", index, step, total))

        return on_step


def _send(conn: Connection, reply: tuple[str, Any]) -> None:
    """``reply`` to the parent, images by shared memory; an outcome that cannot be pickled goes
    as a GenerationFailed."""
    try:
        buffer = io.BytesIO()
        _ResultPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(reply)
        conn.send_bytes(buffer.getbuffer())
    except Exception as exc:  # e.g. an exception holding an unpicklable object
        kind, value = reply
        log.exception("could not send a result back to the server")
        detail = f"{type(value).__name__}: {value}" if kind == "raise" else f"unpicklable result ({exc})"
        conn.send(("raise", GenerationFailed(detail)))


class _ResultPickler(pickle.Pickler):
    """Pickles a PIL image as the name of a shared-memory block holding its pixels."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Image.Image):
            return _image_from_shared_memory, _image_to_shared_memory(obj)
        return NotImplemented


def _image_to_shared_memory(image: Image.Image) -> tuple[str, str, tuple[int, int], int]:
    pixels = image.tobytes()
    block = SharedMemory(create=True, size=max(1, len(pixels)))
    block.buf[:len(pixels)] = pixels
    block.close()  # the parent unlinks it once it has the pixels
    return block.name, image.mode, image.size, len(pixels)


def _image_from_shared_memory(name: str, mode: str, size: tuple[int, int], length: int) -> Image.Image:
    """The parent's side: the image's pixels copied out of their block, and the block freed."""
    block = SharedMemory(name=name)
    try:
        return Image.frombytes(mode, size, bytes(block.buf[:length]))
    finally:
        block.close()
        block.unlink()
