"""One engine hosted in a child process of its own, so its torch work has a GIL of its own.

Why: a GPU model's Python thread launches thousands of small kernels per call, and torch lets go
of the GIL around each one. In the server's process every launch then waits for the GIL behind
the HTTP, encoding and bookkeeping threads: a convoy. ``bench/engine_isolation.py`` on this
project's 2-core CPU: a small-op-bound model call took 2.5x as long beside a thread running Python
half the time and 159x beside one running it all the time; in a process of its own, 1.1x and 1.2x.

The parent keeps a proxy (:class:`EngineProcess`) and calls the hosted engine's methods by name;
arguments and results travel pickled over a pipe. Several calls can be in flight at once, each
with an id: the child runs each in a thread of its own (the engine serialises its own device
work), so the next batch is already waiting in the child when the last one's images are still
being packed and sent (``GenerationService`` lets it go once the last one's denoising is done).
A reader thread in the parent hands each message to the call it belongs to.

A batch's step callbacks are relayed without a round trip (the child never waits for the parent,
whose GIL may be busy): the child sends each step and runs on; when the parent's callback raises
(a cancel), the parent sends that exception back, the child's callback for that request raises it
at its next step, and the request's outcome is that exception whatever the child returns, as a
cancel inside a batch is in-process.

Images coming back do not go through the pipe: a reply's images are pickled out of band
(protocol 5) into one shared-memory block, and only its name and the pixels' offsets cross
(:func:`_pack`); the parent copies them out and hands the block back, and the child reuses it
(:class:`_Blocks`). An engine hands back :class:`ImagePixels` where it can: the array's own memory
goes into the block, and the parent makes the PIL image from it, so the child spends no GIL time
making images and their bytes (29 ms per 32 512² images on 2 CPU cores, against 3 ms). Through
the pipe, a batch of 16 512² images was 12.6 MB read in 64 KiB chunks under the server's GIL: 20%
of its sampled GIL time under 64 clients. A fresh block costs the
kernel's giving it pages, about 1 ms per MB on 2 CPU cores; writing 32 512² images into a reused
block took 2.4 ms against 30.8 ms into a fresh one (``bench/engine_overlap.py``).

The child is a ``spawn`` process (a fresh interpreter: CUDA cannot be forked). It ends when told,
when the parent closes the pipe, or when the parent dies (its pipe reaches end of file).
"""

from __future__ import annotations

import importlib
import io
import itertools
import logging
import multiprocessing
import pickle
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
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
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}  # by call id
        self._calls_lock = threading.Condition()
        self._ids = itertools.count()
        self._gone = False  # the pipe reached its end: the child exited or was stopped
        self._stop_lock, self._stopped = threading.Lock(), False
        self._join_lock = threading.Lock()  # one thread reaps the child; the others then see its code
        self._blocks: set[str] = set()  # the child's reply blocks we have seen (reader thread)
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

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
        makes its outcome that exception. Calls from several threads run at once in the child."""
        call = _Call(on_steps or [])
        with self._calls_lock:
            if self._gone:
                raise self._died(method)
            call_id = next(self._ids)
            self._calls[call_id] = call
        try:
            self._send((call_id, method, args, None if on_steps is None else len(on_steps)))
            kind, *rest = call.outcome.get()
            if kind == "ok":  # the reader ran every step callback before it read the reply
                return _with_raised(rest[0], call.raised) if call.raised else rest[0]
            if kind == "raise":
                raise rest[0]
            raise self._died(method)  # "gone"
        except OSError as exc:  # the pipe broke while sending
            raise self._died(method) from exc
        finally:
            with self._calls_lock:
                del self._calls[call_id]
                self._calls_lock.notify_all()

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _read(self) -> None:
        """The reader thread: runs each relayed step's callback itself and hands each reply to its
        caller, its images out of shared memory; at the pipe's end, every waiting call is told the
        child is gone. (Handing each step to the caller's thread instead made the served model in
        its own process 6-14% slower in ``bench/serving_cost.py`` on 2 CPU cores.)"""
        while True:
            try:
                call_id, kind, *rest = self._conn.recv()
            except (EOFError, OSError):
                break
            if kind == "reply":
                kind, *rest = self._unpacked(*rest)
            with self._calls_lock:
                call = self._calls.get(call_id)
            if call is None:
                continue  # a step of a call that has ended
            if kind == "step":
                self._step(call_id, call, *rest)
            else:
                call.outcome.put((kind, *rest))
        self._free_blocks()
        with self._calls_lock:
            self._gone = True
            for call in self._calls.values():
                call.outcome.put(("gone",))

    def _free_blocks(self) -> None:
        """At the pipe's end: unlink the child's blocks it did not (it was killed)."""
        for name in self._blocks:
            try:
                _free(SharedMemory(name=name))
            except FileNotFoundError:
                pass  # the child unlinked it as it ended
        self._blocks.clear()

    def _unpacked(self, name: str | None, spans: list[tuple[int, int]],
                  payload: bytes) -> tuple[str, Any]:
        """A reply, its pixels copied out of its block, and the block handed back to the child."""
        reply = _unpack(name, spans, payload)
        if name is not None:
            self._blocks.add(name)
            try:
                self._send((None, "free", (name,), None))
            except OSError:
                pass  # the child is gone, and its blocks with it
        return reply

    def _step(self, call_id: int, call: _Call, index: int, step: int, total: int) -> None:
        """A step the child reported: the parent's callback, and its exception sent back."""
        if index in call.raised:
            return  # it left the batch: a step the child sent before it heard
        try:
            call.on_steps[index](step, total)
        except Exception as exc:  # noqa: BLE001 - a cancel (or a failed progress write) goes back
            call.raised[index] = exc
            try:
                self._send((call_id, "cancel", (index, exc), None))
            except OSError:
                pass  # the child is gone; the call hears so from the reader

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask the child to exit once its calls, if any, are done; kill it if they or the exit
        take longer than ``timeout`` (those calls then fail as its process died)."""
        with self._stop_lock:
            if not self._stopped:
                self._stop(timeout)
                self._stopped = True

    def _stop(self, timeout: float) -> None:
        with self._calls_lock:
            idle = self._calls_lock.wait_for(lambda: not self._calls, timeout)
        if idle:
            try:
                self._send((None, "stop", (), None))
            except OSError:
                pass  # already gone
            self._join(timeout)
        if self._process.is_alive():
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
            self._process.kill()
            self._join(None)
        self._reader.join(timeout)  # it reads the pipe's end now that the child is gone
        self._conn.close()

    def _join(self, timeout: float | None) -> None:
        with self._join_lock:
            self._process.join(timeout)

    def _died(self, method: str) -> GenerationFailed:
        self._join(STOP_SECONDS)
        if threading.current_thread() is not self._reader:
            self._reader.join(STOP_SECONDS)  # it has read the pipe's end and freed the blocks
        return GenerationFailed(f"{self.name} (pid {self.pid}) exited with code "
                                f"{self._process.exitcode} during {method}; see the server log")


class _Call:
    """A call in flight: its step callbacks (run by the reader thread), the exceptions they
    raised, and where its outcome arrives."""

    def __init__(self, on_steps: list[StepCallback]) -> None:
        self.on_steps = on_steps
        self.raised: dict[int, Exception] = {}
        self.outcome: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()


def _with_raised(outcomes: list[Any], raised: dict[int, Exception]) -> list[Any]:
    return [raised.get(i, outcome) for i, outcome in enumerate(outcomes)]


# ---- the child ----------------------------------------------------------------------------------


def _serve(conn: Connection, target: str, args: tuple[Any, ...], kwargs: dict[str, Any],
           torch_threads: int | None) -> None:
    """The child's loop: build the engine, then start each call the parent sends on a thread of
    its own and hand cancels to the calls they are for, until told to stop or the parent is
    gone."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if torch_threads:  # as many as the server's own torch work would use
        import torch

        torch.set_num_threads(torch_threads)
    module_name, _, class_name = target.partition(":")
    engine = getattr(importlib.import_module(module_name), class_name)(*args, **kwargs)
    sender = _Sender(conn)
    try:
        _serve_calls(conn, engine, sender)
    finally:
        sender.blocks.close()


def _serve_calls(conn: Connection, engine: Any, sender: _Sender) -> None:
    relays: dict[int, _Relay] = {}
    while True:
        try:
            call_id, method, call_args, steps = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if method == "stop":
            return
        if method == "free":  # the parent has copied a reply's pixels out
            sender.blocks.give_back(*call_args)
            continue
        if method == "cancel":
            relay = relays.get(call_id)
            if relay is not None:  # else it came for a call that has ended
                index, exc = call_args
                relay.cancelled[index] = exc
            continue
        if steps is not None:
            relays[call_id] = _Relay(sender, call_id)
            call_args = (*call_args, relays[call_id].callbacks(steps))
        threading.Thread(target=_run, args=(engine, method, call_args, call_id, sender, relays),
                         name=f"imagehub-call-{call_id}", daemon=True).start()


def _run(engine: Any, method: str, args: tuple[Any, ...], call_id: int, sender: _Sender,
         relays: dict[int, _Relay]) -> None:
    try:
        reply: tuple[str, Any] = ("ok", getattr(engine, method)(*args))
    except Exception as exc:  # noqa: BLE001 - every outcome goes back to the caller
        reply = ("raise", exc)
    finally:
        relays.pop(call_id, None)
    try:
        sender.reply(call_id, reply)
    except OSError:
        pass  # the parent is gone; the main loop ends at the pipe's end


class _Sender:
    """The child's end of the pipe, shared by the calls' threads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.blocks = _Blocks()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            self.conn.send(message)

    def reply(self, call_id: int, reply: tuple[str, Any]) -> None:
        """``reply`` to the parent, images by shared memory; an outcome that cannot be pickled
        goes as a GenerationFailed."""
        try:
            packed = _pack(reply, self.blocks)
        except Exception as exc:  # e.g. an exception holding an unpicklable object
            kind, value = reply
            log.exception("could not send a result back to the server")
            detail = f"{type(value).__name__}: {value}" if kind == "raise" else f"unpicklable result ({exc})"
            packed = _pack(("raise", GenerationFailed(detail)), self.blocks)
        self.send((call_id, "reply", *packed))


class _Relay:
    """The child's step callbacks for one call: each step goes to the parent without waiting;
    a request whose cancel the parent has sent back raises it at its next step."""

    def __init__(self, sender: _Sender, call_id: int) -> None:
        self.sender = sender
        self.call_id = call_id
        self.cancelled: dict[int, Exception] = {}  # filled by the child's main thread

    def callbacks(self, count: int) -> list[Callable[[int, int], None]]:
        return [self._callback(index) for index in range(count)]

    def _callback(self, index: int) -> Callable[[int, int], None]:
        def on_step(step: int, total: int) -> None:
            if index in self.cancelled:
                raise self.cancelled[index]
            self.sender.send((self.call_id, "step", index, step, total))

        return on_step


# ---- images across the boundary -----------------------------------------------------------------


_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
"""PIL's mode for 8-bit pixels with this many channels."""


class ImagePixels:
    """One image's 8-bit pixels (H x W, or H x W x 3 or 4, uint8) that arrive in the parent as a
    PIL image, made there straight from the shared block: the child never makes the image, so
    its GIL stays with its model, and the pixels are copied once on each side."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.ascontiguousarray(array)
        shape = self.array.shape
        channels = 1 if len(shape) == 2 else shape[2] if len(shape) == 3 else 0
        if self.array.dtype != np.uint8 or channels not in _MODES:
            raise ValueError(f"8-bit H x W (x 3 or 4) pixels, not {self.array.dtype} "
                             f"{self.array.shape}")
        self.mode = _MODES[channels]


class _ResultPickler(pickle.Pickler):
    """Pickles pixels as out-of-band buffers (protocol 5): an :class:`ImagePixels`' and a numpy
    array's are their own memory (no copy until the block), a PIL image's a copy (``tobytes``)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, ImagePixels):
            height, width = obj.array.shape[:2]
            return _image_from_pixels, (obj.mode, (width, height), pickle.PickleBuffer(obj.array))
        if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
            array = np.ascontiguousarray(obj)
            return _array_from_pixels, (array.dtype.str, array.shape, pickle.PickleBuffer(array))
        if isinstance(obj, Image.Image):
            return _image_from_pixels, (obj.mode, obj.size, pickle.PickleBuffer(obj.tobytes()))
        return NotImplemented


def _array_from_pixels(dtype: str, shape: tuple[int, ...], pixels: Any) -> np.ndarray:
    return np.frombuffer(pixels, dtype=dtype).reshape(shape).copy()  # the child reuses the block


def _image_from_pixels(mode: str, size: tuple[int, int], pixels: Any) -> Image.Image:
    return Image.frombytes(mode, size, pixels)  # a copy: the child reuses the block


def _pack(reply: tuple[str, Any], blocks: _Blocks) -> tuple[str | None, list[tuple[int, int]], bytes]:
    """``reply`` pickled with its images' pixels out of band, in one shared-memory block of
    ``blocks``: the block's name (None without images), each buffer's offset and length, and the
    pickle."""
    buffers: list[pickle.PickleBuffer] = []
    out = io.BytesIO()
    _ResultPickler(out, 5, buffer_callback=buffers.append).dump(reply)
    raws = [buffer.raw() for buffer in buffers]
    spans, total = [], 0
    for raw in raws:
        spans.append((total, raw.nbytes))
        total += raw.nbytes
    if not raws:
        return None, [], out.getvalue()
    block = blocks.take(total)
    for (offset, length), raw in zip(spans, raws, strict=True):
        block.buf[offset:offset + length] = raw
    return block.name, spans, out.getvalue()


def _unpack(name: str | None, spans: list[tuple[int, int]], payload: bytes) -> tuple[str, Any]:
    """The parent's side of :func:`_pack`: the reply, its pixels copied out of the block (which
    stays the child's; a reply that cannot be read is a GenerationFailed)."""
    try:
        if name is None:
            return pickle.loads(payload)
        block = SharedMemory(name=name)  # a spawned child shares our resource tracker: the
        # block is already registered there, by the child, which unlinks it
        try:
            views = [block.buf[offset:offset + length] for offset, length in spans]
            try:
                return pickle.loads(payload, buffers=views)
            finally:
                for view in views:
                    view.release()
        finally:
            block.close()
    except Exception as exc:  # the call fails, the server goes on
        log.exception("could not read a result from the model's process")
        return "raise", GenerationFailed(f"could not read the model process's reply ({exc})")


class _Blocks:
    """The child's shared-memory blocks for replies: a block the parent has copied out of comes
    back (``give_back``) and the next reply that fits writes into it, into pages the kernel has
    already given. At most ``KEEP`` idle blocks stay; all are unlinked when the child ends (or,
    if it is killed, by the parent: ``EngineProcess._free_blocks``)."""

    KEEP = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[SharedMemory] = []
        self._lent: dict[str, SharedMemory] = {}

    def take(self, size: int) -> SharedMemory:
        with self._lock:
            fitting = [block for block in self._idle if block.size >= size]
            if fitting:
                block = min(fitting, key=lambda b: b.size)
                self._idle.remove(block)
            else:
                block = SharedMemory(create=True, size=max(1, size))
            self._lent[block.name] = block
            return block

    def give_back(self, name: str) -> None:
        with self._lock:
            block = self._lent.pop(name, None)
            if block is None:
                return
            self._idle.append(block)
            while len(self._idle) > self.KEEP:  # the smallest go first
                smallest = min(self._idle, key=lambda b: b.size)
                self._idle.remove(smallest)
                _free(smallest)

    def close(self) -> None:
        with self._lock:
            for block in [*self._idle, *self._lent.values()]:
                _free(block)
            self._idle, self._lent = [], {}


def _free(block: SharedMemory) -> None:
    block.close()
    try:
        block.unlink()
    except FileNotFoundError:
        pass
