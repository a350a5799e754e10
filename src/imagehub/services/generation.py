"""The generation service: resolve model → validate → run or enqueue → store → publish."""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Self

from imagehub.catalog.catalog import Catalog, ModelEntry
from imagehub.db.records import GenerationRecord
from imagehub.engines.base import (
    BatchingEngine,
    Engine,
    EngineRequest,
    EngineResult,
    StepCallback,
)
from imagehub.engines.registry import is_remote
from imagehub.errors import (
    ClientClosedRequest,
    Forbidden,
    GenerationCancelled,
    GenerationFailed,
    ImagehubError,
    InvalidParams,
    InvalidState,
    ModelUnavailable,
    NotFound,
    RateLimited,
    StorageUnavailable,
    UpstreamError,
    clip,
    quote,
)
from imagehub.events.bus import EventBus
from imagehub.jobs.batching import Batch, Batcher, BatchPolicy, SyncCall, batch_key
from imagehub.jobs.queue import RowFilter, SqlQueue
from imagehub.jobs.worker import WorkerPool
from imagehub.protocol import (
    CancelResponse,
    EnqueuedGeneration,
    EnqueueResponse,
    EventName,
    GenerateResponse,
    GenerationRow,
    GenerationStatus,
    HistoryPage,
    ImageOut,
    QueueList,
)
from imagehub.services import inputs, provenance
from imagehub.services.keys import Principal
from imagehub.services.requests import ParsedRequest, engine_request, parse, seeded
from imagehub.storage.base import Storage
from imagehub.storage.images import encode_png
from imagehub.storage.signing import UrlSigner

log = logging.getLogger(__name__)
S = GenerationStatus


@dataclass
class Services:
    """Everything a request needs, built once per app (see ``imagehub.app``)."""

    catalog: Catalog
    queue: SqlQueue
    bus: EventBus
    storage: Storage
    signer: UrlSigner
    workers: WorkerPool | None = None
    """The local models' workers (their engine slots are ``WORKER_CONCURRENCY``)."""
    provider_workers: WorkerPool | None = None
    """The remote models' (``PROVIDER_CONCURRENCY`` at once, apart from the local ones)."""
    provider_concurrency: int = 8
    batch_policy: BatchPolicy = field(default_factory=BatchPolicy)
    batcher: Batcher | None = None
    """Tops a batch up with the work that arrived while it waited for its engine."""
    encode_workers: int = 4
    """Threads that encode a batch's PNGs (PIL releases the GIL while it compresses)."""
    engine_handoff: bool | str = False
    """When the next batch may go to a model early (``Settings.engine_handoff``)."""
    events_from_rows: bool = False
    """A server without workers: its queue's events come from the rows (``events.relay``),
    cancels included."""
    on_engine_call: EngineCallHook | None = None
    """Told of every engine call: for metrics (``api.metrics.Metrics.engine_call``)."""
    max_queued: int = 0
    """Generations a namespace may have queued or processing (``Settings.max_queued_per_namespace``;
    0: no limit)."""


EngineCallHook = Callable[[str, int, float, list["EngineResult | Exception"]], None]
"""``hook(model, images, seconds, outcomes)`` after each engine call."""


class GenerationService:
    def __init__(self, deps: Services) -> None:
        self.deps = deps
        self._encoder: ThreadPoolExecutor | None = None
        self._engine_locks: dict[str, FairSemaphore] = {}
        self._locks_lock = threading.Lock()
        self._idempotency_lock = threading.Lock()
        """Enqueues with an Idempotency-Key, one at a time in this process (they run in the thread
        pool); between processes, the key's row (``add_under_key``) lets one in."""
        self._active: dict[str, tuple[float, int]] = {}
        """Per namespace: when its active rows were last counted, and that count plus what this
        process queued since (``_check_room``)."""

    @property
    def batch_policy(self) -> BatchPolicy:
        return self.deps.batch_policy

    # ---- sync -----------------------------------------------------------------------------------

    def generate(self, principal: Principal, body: Any, *, edit: bool = False,
                 gone: threading.Event | None = None) -> GenerateResponse:
        """Run now and block until the images exist (``/images/generate`` and ``/images/edit``).
        ``gone``, once set (the client closed its connection), cancels the call at its next step:
        a cancelled row, and ClientClosedRequest."""
        # 1. validate everything before running anything
        request = inputs.keep(self.deps.storage, parse(self.deps.catalog, principal, body,
                                                       count_field="n", require_image=edit))
        engine = request.entry.ready_engine()
        record = self._record(principal, request, seeded(request.resolved, 0), "sync", request.count)
        # 2. run in one of the shared engine slots
        started = int(time.time())
        try:
            result = self._run_sync(engine, record, gone or threading.Event())
        except GenerationFailed as exc:
            self._save_ended(record, started, str(exc))
            raise UpstreamError(f"{request.entry.id}: {exc}") from exc
        except UpstreamError as exc:  # a remote provider failed: kept in the history too
            self._save_ended(record, started, exc.detail)
            raise
        except GenerationCancelled as exc:  # nobody waits for it: the history says why
            self._save_ended(record, started, str(exc), S.CANCELLED)
            raise ClientClosedRequest(str(exc)) from exc
        # 3. store, record, answer (each PNG is encoded once, for storage and for b64_json)
        pngs = [encode_png(image) for image in result.images]
        try:
            record.images = self._put(record.id, result, pngs)
        except StorageUnavailable as exc:  # the history says why, if the database can
            try:
                self._save_ended(record, started, exc.detail)
            except Exception:  # the answer is the storage error either way
                log.warning("generation %s could not be recorded either", record.id, exc_info=True)
            raise
        record.provenance = provenance.collect(request.entry, result)
        record.status, record.started_at, record.completed_at = S.SUCCEEDED.value, started, int(time.time())
        try:
            self.deps.queue.add([record])
        except Exception:  # the row was not written (the database stayed locked): no orphan files
            self.deps.storage.delete_prefix(record.id)
            raise
        return self._sync_response(record, result, pngs, request.response_format)

    def _run_sync(self, engine: Engine, record: GenerationRecord, gone: threading.Event) -> EngineResult:
        """The engine's result for a sync call: through the batcher when the pool has one."""
        request = self._engine_request(record)
        workers = self.deps.workers
        if is_remote(engine.backend) and self.deps.provider_workers is not None:
            workers = self.deps.provider_workers  # waits on a provider: not in a local slot
        assert workers is not None, "the worker pool is not running"
        call = SyncCall(record.model_name, batch_key(record.resolved), request, record.num_images,
                        gone=gone)
        if not workers.batching:
            with workers.slot():
                return self._generate(engine, record, request, _while_wanted(call))
        return workers.run_sync(call)

    def _sync_response(self, record: GenerationRecord, result: EngineResult, pngs: list[bytes],
                       response_format: str) -> GenerateResponse:
        if response_format == "b64_json":
            images = [ImageOut(b64_json=base64.b64encode(png).decode(), width=img.width,
                               height=img.height) for img, png in zip(result.images, pngs, strict=True)]
        else:
            images = self._image_urls(record)
        return GenerateResponse(model=record.model_name, created=record.completed_at or 0,
                                images=images, image_url=images[0].url if images else None,
                                generation_id=record.id)

    def _save_ended(self, record: GenerationRecord, started: int, message: str,
                    status: S = S.FAILED) -> None:
        """A sync call that made no images, kept in the history with why."""
        record.status, record.error_message = status.value, message
        record.started_at, record.completed_at = started, int(time.time())
        self.deps.queue.add([record])

    # ---- queue ----------------------------------------------------------------------------------

    def enqueue(self, principal: Principal, body: Any, idempotency_key: str | None = None) -> EnqueueResponse:
        request = parse(self.deps.catalog, principal, body, count_field="num_generations")
        self._check_available(request.entry)
        request = inputs.keep(self.deps.storage, request)
        records = [self._record(principal, request, seeded(request.resolved, i), "queue", 1,
                                idempotency_key) for i in range(request.count)]
        if idempotency_key:
            with self._idempotency_lock:  # the look-up and the insert as one, in this process
                earlier = self._earlier(request, idempotency_key)
                if earlier is None:
                    self._check_room(request)
                if earlier is None and not self.deps.queue.add_under_key(
                        request.namespace, idempotency_key, records):
                    earlier = self._earlier(request, idempotency_key)  # another process's, just now
                    if earlier is None:  # its rows are gone: the key cannot be told apart
                        raise InvalidParams(f"Idempotency-Key: {quote(idempotency_key)} was used "
                                            "already; send a new key for a new request")
            if earlier is not None:
                return earlier
        else:
            self._check_room(request)
            self.deps.queue.add(records)
        pool = self.deps.provider_workers if is_remote(request.entry.card.backend) \
            else self.deps.workers  # the other lane's workers would find nothing
        if pool:
            pool.wake()
        return EnqueueResponse(generations=[
            EnqueuedGeneration(generation_id=r.id, status=S.QUEUED) for r in records])

    def _check_room(self, request: ParsedRequest) -> None:
        """RateLimited when the namespace's queued and processing generations and this request's
        would pass ``max_queued``. A soft cap: the rows are counted at most once a second per
        namespace (and whenever the count so far, plus what this process queued since, nears
        the limit); another process's enqueues in between may pass it by their own counts."""
        limit, namespace = self.deps.max_queued, request.namespace
        if not limit:
            return
        now = time.monotonic()
        counted_at, active = self._active.get(namespace, (-math.inf, 0))
        if now - counted_at > 1.0 or active + request.count > limit:
            counted_at, active = now, self.deps.queue.active(namespace)
        if active + request.count > limit:
            raise RateLimited(f"namespace {quote(namespace)} has {active} generations "
                              f"queued or processing; {request.count} more would pass the limit "
                              f"of {limit} (IMAGEHUB_MAX_QUEUED_PER_NAMESPACE)", retry_after=5)
        self._active[namespace] = (counted_at, active + request.count)

    def _earlier(self, request: ParsedRequest, key: str) -> EnqueueResponse | None:
        """The rows an earlier request queued under ``key``, if any (InvalidParams if it was
        another request)."""
        earlier = self.deps.queue.by_idempotency_key(request.namespace, key)
        if not earlier:
            return None
        _check_same_request(key, earlier, request)
        return EnqueueResponse(generations=[
            EnqueuedGeneration(generation_id=r.id, status=S(r.status)) for r in earlier])

    @staticmethod
    def _check_available(entry: ModelEntry) -> None:
        if not entry.available:
            raise ModelUnavailable(str(entry.unavailable_reason))

    def get(self, principal: Principal, generation_id: str) -> GenerationRow:
        return self.row(self._owned(principal, generation_id))

    def list_active(self, principal: Principal, statuses: list[str], model: str | None,
                    media_type: str | None, limit: int) -> QueueList:
        """Rows of ``statuses`` (default: queued and processing), newest first."""
        statuses = statuses or [S.QUEUED.value, S.PROCESSING.value]
        rows = self.deps.queue.list(RowFilter(principal.namespaces, statuses, model, media_type),
                                    limit=limit)
        return QueueList(count=len(rows), generations=[self.row(r) for r in rows])

    def history(self, principal: Principal, page: int, page_size: int, statuses: list[str],
                model: str | None, media_type: str | None) -> HistoryPage:
        where = RowFilter(principal.namespaces, statuses, model, media_type)
        total = self.deps.queue.count(where)
        rows = self.deps.queue.list(where, offset=(page - 1) * page_size, limit=page_size)
        return HistoryPage(count=len(rows), page_number=page, page_size=page_size,
                           total_pages=math.ceil(total / page_size), total_entries=total,
                           generations=[self.row(r) for r in rows])

    def cancel(self, principal: Principal, generation_id: str) -> CancelResponse:
        record = self._owned(principal, generation_id)
        if not self.deps.queue.cancel(generation_id):
            current = self.deps.queue.get(generation_id)
            status = current.status if current else record.status
            raise InvalidState(f"generation {generation_id} already ended with status {status!r}; "
                               "only queued or processing generations can be cancelled")
        if not self.deps.events_from_rows:  # else the relay publishes it, as it does the others
            self.deps.bus.publish(record.namespace, EventName.CANCELLED,
                                  self._event(record, S.CANCELLED))
        return CancelResponse(generation_id=generation_id)

    def _owned(self, principal: Principal, generation_id: str) -> GenerationRecord:
        record = self.deps.queue.get(generation_id)
        if record is None:
            raise NotFound(f"Generation not found: {clip(generation_id)}")
        if record.namespace not in principal.namespaces:
            raise Forbidden(f"generation {clip(generation_id)} belongs to another namespace")
        return record

    # ---- the worker's side ----------------------------------------------------------------------

    def run_job(self, record: GenerationRecord) -> None:
        """Run one claimed job to its end: succeeded, failed, or silently dropped if cancelled."""
        self._started(record)
        try:
            engine = self.deps.catalog.get(record.model_name).ready_engine()
            outcome: EngineResult | Exception = self._generate(
                engine, record, self._engine_request(record), self._progress(record))
        except Exception as exc:  # noqa: BLE001 - an outcome per request
            outcome = exc
        images: list[dict[str, Any]] = []
        if isinstance(outcome, EngineResult):
            try:
                images = self._store(record.id, outcome)
            except StorageUnavailable as exc:  # the row fails, saying why
                outcome = exc
        self._conclude(record, outcome, images)

    def batch_capacity(self, model: str) -> int:
        """Images one engine call of ``model`` may take if its engine batches: the engine's own
        limit (its card's ``max_batch_size``), else the policy's."""
        try:
            engine = self.deps.catalog.get(model).engine
        except NotFound:
            return 1
        if not isinstance(engine, BatchingEngine):
            return 1
        return engine.max_batch_size or self.batch_policy.max_size

    def run_batch(self, batch: Batch, slot: Callable[[], AbstractContextManager[None]]) -> None:
        """Run a batch of compatible work of one model (``WorkerPool`` batch handler)."""
        # 1. prepare outside the slot: events, engine requests (a row whose inputs fail fails
        #    alone), the model loaded (loading never holds up another resident model's batches)
        rows, requests = self._prepared(batch.rows)
        try:
            engine = self.deps.catalog.get(batch.model).ready_engine()
            engine.load()  # again if it was unloaded to make room for another model
        except Exception as exc:  # noqa: BLE001 - an outcome per request
            outcomes: list[EngineResult | Exception] = [exc] * (len(requests) + len(batch.calls))
        else:
            # 2. one engine call, in a slot, topped up with what came while it waited
            with slot(), _EngineTurn(self._engine_lock(batch.model, engine)) as turn:
                if self.deps.batcher is not None:
                    added = self.deps.batcher.top_up(batch)
                    more_rows, more_requests = self._prepared(added.rows)
                    rows, requests = rows + more_rows, requests + more_requests
                calls = [call.request for call in batch.calls]
                progress = _BatchProgress(self, rows)
                on_steps = [progress.on_step(row) for row in rows] + [
                    _while_wanted(call) for call in batch.calls]
                if hands_off_early(engine, self.deps.engine_handoff):
                    on_steps = turn.until_last_step(on_steps)
                started = time.perf_counter()
                outcomes = _run_engine(engine, requests + calls, on_steps)
                self._observe(batch.model, sum(r.num_images for r in requests + calls), started,
                              outcomes)
        # 3. answer the sync calls first (their threads encode in parallel), then end the rows
        for call, outcome in zip(batch.calls, outcomes[len(rows):], strict=True):
            if isinstance(outcome, Exception):
                call.future.set_exception(outcome)
            else:
                call.future.set_result(outcome)
        self._conclude_rows(rows, outcomes[:len(rows)])

    def _generate(self, engine: Engine, record: GenerationRecord, request: EngineRequest,
                  on_step: StepCallback) -> EngineResult:
        """One request's engine call, reported to ``on_engine_call``."""
        started = time.perf_counter()
        try:
            result = engine.generate(request, on_step)
        except Exception as exc:
            self._observe(record.model_name, record.num_images, started, [exc])
            raise
        self._observe(record.model_name, record.num_images, started, [result])
        return result

    def _observe(self, model: str, images: int, started: float,
                 outcomes: list[EngineResult | Exception]) -> None:
        if self.deps.on_engine_call is not None:
            self.deps.on_engine_call(model, images, time.perf_counter() - started, outcomes)

    def _prepared(self, records: list[GenerationRecord]) -> tuple[list[GenerationRecord],
                                                                  list[EngineRequest]]:
        """Started rows and their engine requests; a row whose inputs fail is failed alone."""
        rows, requests = [], []
        for row in records:
            self._started(row)
            try:
                requests.append(self._engine_request(row))
            except Exception as exc:  # noqa: BLE001 - an outcome per request
                self._conclude(row, exc, [])
                continue
            rows.append(row)
        return rows, requests

    def _engine_request(self, record: GenerationRecord) -> EngineRequest:
        return engine_request(record.resolved, record.num_images,
                              partial(inputs.load, self.deps.storage))

    def _engine_lock(self, model: str, engine: Engine) -> FairSemaphore:
        """One batch of a model at the engine at a time, or one per copy of a model with
        ``replicas`` (until its denoising is done, see :class:`_EngineTurn`): the next one waits
        here, topping up with the work that arrives meanwhile, instead of running half empty."""
        with self._locks_lock:
            if model not in self._engine_locks:  # a card's replicas are read once, at start
                at_once = self.deps.provider_concurrency if is_remote(engine.backend) \
                    else _copies(engine)  # a provider takes calls side by side
                self._engine_locks[model] = FairSemaphore(at_once)
            return self._engine_locks[model]

    def _started(self, record: GenerationRecord) -> None:
        self.deps.bus.publish(record.namespace, EventName.STARTED, self._event(record, S.PROCESSING))

    def _conclude_rows(self, rows: list[GenerationRecord],
                       outcomes: list[EngineResult | Exception]) -> None:
        """End a batch's rows: the successes stored and written in one transaction, then each
        failure alone."""
        outcomes = list(outcomes)
        done = [(n, o) for n, o in enumerate(outcomes) if isinstance(o, EngineResult)]
        encoded = self._encode_many([o for _, o in done])
        stored = []
        for (n, result), data in zip(done, encoded, strict=True):
            try:
                stored.append((rows[n], result, self._put(rows[n].id, result, data)))
            except StorageUnavailable as exc:  # this row fails, saying why; the others go on
                outcomes[n] = exc
        finished = self.deps.queue.finish_many([
            (row.id, images, provenance.collect(self.deps.catalog.get(row.model_name), result))
            for row, result, images in stored])
        for row, _, images in stored:
            self._succeeded(row, images, row.id in finished)
        for row, outcome in zip(rows, outcomes, strict=True):
            if not isinstance(outcome, EngineResult):
                self._conclude(row, outcome, [])

    def _conclude(self, record: GenerationRecord, outcome: EngineResult | Exception,
                  images: list[dict[str, Any]]) -> None:
        """End a claimed row with its outcome: succeeded, failed, or dropped (cancelled)."""
        if isinstance(outcome, GenerationCancelled):
            return  # the cancel already ended the row and published its event
        if isinstance(outcome, (GenerationFailed, ImagehubError)):
            self._fail(record, str(getattr(outcome, "detail", outcome)))
            return
        if isinstance(outcome, Exception):
            log.error("generation %s failed", record.id, exc_info=outcome)
            self._fail(record, f"engine error: {type(outcome).__name__}: {outcome}")
            return
        entry = self.deps.catalog.get(record.model_name)
        self._succeeded(record, images,
                        self.deps.queue.finish(record.id, images, provenance.collect(entry, outcome)))

    def _succeeded(self, record: GenerationRecord, images: list[dict[str, Any]], finished: bool) -> None:
        """After the row's success was written (``finished``): publish it; if the row had been
        cancelled after its last step instead, keep nothing."""
        if not finished:
            self.deps.storage.delete_prefix(record.id)
            return
        record.images, record.status = images, S.SUCCEEDED.value
        payload = self._event(record, S.SUCCEEDED)
        payload["url"] = self._image_urls(record)[0].url
        self.deps.bus.publish(record.namespace, EventName.COMPLETED, payload)

    def _progress(self, record: GenerationRecord):  # type: ignore[no-untyped-def]
        def on_step(step: int, total: int) -> None:
            if not self.deps.queue.report_progress(record.id, step / max(total, 1)):
                raise GenerationCancelled(record.id)
            self._publish_progress(record, step, total)
        return on_step

    def _publish_progress(self, record: GenerationRecord, step: int, total: int) -> None:
        payload = self._event(record, S.PROCESSING)
        payload.update(step=step, total_steps=total, progress=round(step / max(total, 1), 4))
        self.deps.bus.publish(record.namespace, EventName.PROGRESS, payload)

    def _fail(self, record: GenerationRecord, message: str) -> bool:
        """Fail a processing row and publish it; whether it was processing."""
        if not self.deps.queue.fail(record.id, message):
            return False
        payload = self._event(record, S.FAILED)
        payload["error"] = message
        self.deps.bus.publish(record.namespace, EventName.COMPLETED, payload)
        return True

    def fail_crashed(self, rows: list[GenerationRecord], exc: Exception) -> None:
        """The worker's handler raised ``exc`` on ``rows``: those still processing fail (and
        say so on the event stream) rather than wait for a restart."""
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}; the server's log has it"
        for row in rows:  # what the exception says may be another namespace's (SQL, its ids)
            if self._fail(row, f"internal error: {detail}"):
                self.deps.storage.delete_prefix(row.id)  # images stored before the crash

    def publish_row_started(self, record: GenerationRecord) -> None:
        """A row another process started (``events.relay``)."""
        self.deps.bus.publish(record.namespace, EventName.STARTED, self._event(record, S.PROCESSING))

    def publish_row_ended(self, record: GenerationRecord) -> None:
        """An ended row's event, from the row alone: one another process ended or a cancel
        (``events.relay``), or one a crash failed (``publish_recovered_failures``)."""
        status = S(record.status)
        if status is S.CANCELLED:
            self.deps.bus.publish(record.namespace, EventName.CANCELLED, self._event(record, status))
            return
        payload = self._event(record, status)
        if status is S.SUCCEEDED:
            payload["url"] = self._image_urls(record)[0].url
        else:
            payload["error"] = record.error_message
        self.deps.bus.publish(record.namespace, EventName.COMPLETED, payload)

    def publish_recovered_failures(self, failed: list[GenerationRecord]) -> None:
        for record in failed:
            self.publish_row_ended(record)

    # ---- shaping --------------------------------------------------------------------------------

    def _record(self, principal: Principal, request: ParsedRequest, resolved: dict[str, Any],
                source: str, num_images: int, idempotency_key: str | None = None) -> GenerationRecord:
        now = time.time_ns()
        return GenerationRecord(
            id=str(uuid.uuid4()), namespace=request.namespace, key_id=principal.key_id,
            model_name=request.entry.id, media_type="image", source=source,
            prompt=request.params.get("prompt"), params=request.params, carried=request.carried,
            resolved=resolved, provenance={}, status=S.QUEUED.value, num_images=num_images, images=[],
            attempts=0, idempotency_key=idempotency_key, enqueued_at=now // 1_000_000_000,
            order_key=now,
        )

    def _store(self, generation_id: str, result: EngineResult) -> list[dict[str, Any]]:
        return self._put(generation_id, result, [encode_png(image) for image in result.images])

    def _encode_many(self, results: list[EngineResult]) -> list[list[bytes]]:
        """PNGs of every result's images, encoded in parallel off the engine's thread."""
        images = [image for result in results for image in result.images]
        if len(images) > 1:
            if self._encoder is None:
                self._encoder = ThreadPoolExecutor(self.deps.encode_workers, "imagehub-encode")
            encoded = list(self._encoder.map(encode_png, images))
        else:
            encoded = [encode_png(image) for image in images]
        out, start = [], 0
        for result in results:
            out.append(encoded[start:start + len(result.images)])
            start += len(result.images)
        return out

    def _put(self, generation_id: str, result: EngineResult, data: list[bytes]) -> list[dict[str, Any]]:
        """Store a generation's images; StorageUnavailable leaves none of them."""
        stored = []
        try:
            for index, (image, png) in enumerate(zip(result.images, data, strict=True)):
                key = f"{generation_id}/{index}.png"
                self.deps.storage.put(key, png, "image/png")
                stored.append({"key": key, "width": image.width, "height": image.height})
        except StorageUnavailable:
            self.deps.storage.delete_prefix(generation_id)
            raise
        return stored

    def _image_urls(self, record: GenerationRecord) -> list[ImageOut]:
        return [ImageOut(url=self.deps.signer.url(record.id, image["key"].rsplit("/", 1)[1]),
                         width=image["width"], height=image["height"]) for image in record.images]

    def row(self, record: GenerationRecord) -> GenerationRow:
        images = self._image_urls(record) if record.status == S.SUCCEEDED.value else []
        fields: dict[str, Any] = dict(record.carried or {})  # null in a record made without it
        fields.update((k, _echo(v)) for k, v in record.params.items())
        fields.update(
            generation_id=record.id, model_name=record.model_name, prompt=record.prompt,
            media_type=record.media_type, status=record.status,
            result_url=images[0].url if images else None,
            error_message=record.error_message if record.status == S.FAILED.value else None,
            enqueued_at=record.enqueued_at, started_at=record.started_at,
            completed_at=record.completed_at,
        )
        if record.status == S.PROCESSING.value and record.progress is not None:
            fields["progress"] = record.progress
        if record.resolved.get("seed") is not None:
            fields["seed"] = record.resolved["seed"]
        if images:
            fields["images"] = [image.model_dump(exclude_none=True) for image in images]
        return GenerationRow(**fields)

    @staticmethod
    def _event(record: GenerationRecord, status: GenerationStatus) -> dict[str, Any]:
        return {"generation_id": record.id, "status": status.value, "media_type": record.media_type,
                "model": record.model_name}


class _BatchProgress:
    """Per-row step callbacks of one batch that write the step once for all its rows (one
    statement, not one per row, while the engine waits); a row no longer processing was
    cancelled, and its callback raises GenerationCancelled."""

    def __init__(self, service: GenerationService, rows: list[GenerationRecord]) -> None:
        self._service, self._live = service, {row.id for row in rows}
        self._step: tuple[int, int] | None = None

    def on_step(self, record: GenerationRecord) -> StepCallback:
        def callback(step: int, total: int) -> None:
            if self._step != (step, total):  # the first row to see this step writes it for all
                self._step = (step, total)
                self._live = self._service.deps.queue.report_progress_many(
                    sorted(self._live), step / max(total, 1))
            if record.id not in self._live:
                raise GenerationCancelled(record.id)
            self._service._publish_progress(record, step, total)
        return callback


def hands_off_early(engine: Engine, setting: bool | str) -> bool:
    """Whether ``engine``'s next batch goes to it at a batch's last step (``ENGINE_HANDOFF``):
    only for one batched call of one copy, and with ``auto`` only on a device other than the
    host's CPU. With ``replicas`` the copies already overlap one batch's host work with another's
    device work, and a turn given back early would send the next batch to a copy still busy."""
    if not isinstance(engine, BatchingEngine) or _copies(engine) > 1:
        return False  # requests one by one: the turn lasts until the last one is done
    if setting == "auto":
        return str(getattr(engine, "device", "cpu")).split(":")[0] != "cpu"
    return bool(setting)


def _copies(engine: Engine) -> int:
    """How many batches ``engine`` runs at once: its copies (``replicas``), else one."""
    return max(1, int(getattr(engine, "replicas", 1)))


class FairSemaphore:
    """A semaphore whose waiters get in in the order they came. ``threading.Semaphore`` lets a
    thread that releases and at once acquires again go first: under 64 sync clients, one worker's
    full batches took the engine back to back while the other worker's batch of 16 calls waited
    8 s for its turn (the first calls of a load answered in 10 s, the rest in 2)."""

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    def acquire(self) -> None:
        with self._changed:
            me = object()
            self._waiting.append(me)
            while self._waiting[0] is not me or not self._free:
                self._changed.wait()
            self._waiting.popleft()
            self._free -= 1
            self._changed.notify_all()  # the next in line may go too, if one is free

    def release(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()


class _EngineTurn:
    """A batch's turn at its model's engine lock, given up (with the hand-off) when the engine
    reports the batch's last step, rather than when the call returns; a diffusers engine reports
    it once the batch's pixels are on the host. The next batch, topped up until then, goes to the
    engine while this one's images come back, so the device does not sit idle while the host
    packs, sends and receives them (with calls one after another, a compiled SD-Turbo batch of 32
    kept an H100 busy only 32-36% of the time at 29b1a5d)."""

    def __init__(self, lock: FairSemaphore | threading.Lock) -> None:
        self._lock = lock
        self._held = False
        self._guard = threading.Lock()

    def __enter__(self) -> Self:
        self._lock.acquire()
        self._held = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        with self._guard:
            if self._held:
                self._held = False
                self._lock.release()

    def until_last_step(self, on_steps: list[StepCallback]) -> list[StepCallback]:
        """``on_steps``, each letting the turn go at the last step before it reports it."""
        def wrapped(on_step: StepCallback) -> StepCallback:
            def callback(step: int, total: int) -> None:
                if step >= total:
                    self.release()
                on_step(step, total)
            return callback

        return [wrapped(on_step) for on_step in on_steps]


def _run_engine(engine: Engine, requests: list[EngineRequest],
                on_steps: list[StepCallback]) -> list[EngineResult | Exception]:
    """One outcome per request: one batched call when the engine batches, else one by one."""
    if isinstance(engine, BatchingEngine):
        try:
            return engine.generate_batch(requests, on_steps)
        except Exception as exc:  # noqa: BLE001 - an outcome per request
            return [exc] * len(requests)
    outcomes: list[EngineResult | Exception] = []
    for request, on_step in zip(requests, on_steps, strict=True):
        try:
            outcomes.append(engine.generate(request, on_step))
        except Exception as exc:  # noqa: BLE001 - an outcome per request
            outcomes.append(exc)
    return outcomes


def _check_same_request(key: str, earlier: list[GenerationRecord], request: ParsedRequest) -> None:
    """Refuse a reused ``Idempotency-Key`` whose request differs from the one that first used it."""
    for name, (then, now) in _request_identity(earlier, request).items():
        if then != now:
            used = " (the seed used then: sent, or chosen when none was)" if name == "seed" else ""
            raise InvalidParams(f"Idempotency-Key: {quote(key)} was already used with a "
                                f"different request ({name}: {quote(then)} then{used}, "
                                f"{quote(now)} now); "
                                "send a new key for a new request")


def _request_identity(earlier: list[GenerationRecord],
                      request: ParsedRequest) -> dict[str, tuple[Any, Any]]:
    """What makes a queue request itself, as (first request's, this one's) per name.

    The first request is read back from its rows: model, one row per generation, the model
    fields as carried, and the first row's seed (where a generic ``seed`` is kept). A retry that
    leaves out a generic seed counts as the same request: the rows cannot tell a random first
    seed from a sent one.
    """
    first = earlier[0]
    pairs = {"model": (first.model_name, request.entry.id),
             "num_generations": (len(earlier), request.count)}
    for name in sorted(first.params.keys() | request.params.keys()):
        then = first.params.get(name, _ABSENT)
        pairs[name] = (inputs.comparable(then) if name == "input_image" else then,
                       request.params.get(name, _ABSENT))
    if request.resolved.get("seed") is not None:
        pairs["seed"] = (first.resolved.get("seed"), request.resolved["seed"])
    return pairs


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _echo(value: Any) -> Any:
    """A carried param as rows echo it: input images as data URIs shortened
    (``services.inputs.echo``), everything else verbatim."""
    if isinstance(value, list):
        return [_echo(v) for v in value]
    if isinstance(value, str) and value.startswith("data:"):
        return inputs.echo(value)
    return value


def _while_wanted(call: SyncCall) -> StepCallback:
    """A sync call's step callback: no progress to report, but once its client has gone the call
    leaves its batch (the others run on)."""
    def on_step(step: int, total: int) -> None:
        if call.gone.is_set():
            raise GenerationCancelled(f"the client closed the connection; cancelled at step {step} "
                                      f"of {total}")
    return on_step
