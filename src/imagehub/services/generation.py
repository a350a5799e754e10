"""The generation service: resolve model → validate → run or enqueue → store → publish."""

from __future__ import annotations

import base64
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from imagehub.catalog.catalog import Catalog, ModelEntry
from imagehub.db.records import GenerationRecord
from imagehub.engines.base import EngineResult, no_progress
from imagehub.errors import (
    Forbidden, GenerationCancelled, GenerationFailed, ImagehubError, InvalidState,
    ModelUnavailable, NotFound, UpstreamError,
)
from imagehub.events.bus import EventBus
from imagehub.jobs.queue import RowFilter, SqlQueue
from imagehub.jobs.worker import WorkerPool
from imagehub.protocol import (
    CancelResponse, EnqueuedGeneration, EnqueueResponse, EventName, GenerateResponse,
    GenerationRow, GenerationStatus, HistoryPage, ImageOut, QueueList,
)
from imagehub.services import provenance
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


class GenerationService:
    def __init__(self, deps: Services) -> None:
        self.deps = deps

    # ---- sync -----------------------------------------------------------------------------------

    def generate(self, principal: Principal, body: Any, *, edit: bool = False) -> GenerateResponse:
        """Run now and block until the images exist (``/images/generate`` and ``/images/edit``)."""
        # 1. validate everything before running anything
        request = parse(self.deps.catalog, principal, body, count_field="n", require_image=edit)
        engine = request.entry.ready_engine()
        record = self._record(principal, request, seeded(request.resolved, 0), "sync", request.count)
        # 2. run in one of the shared engine slots
        assert self.deps.workers is not None, "the worker pool is not running"
        started = int(time.time())
        try:
            with self.deps.workers.slot():
                result = engine.generate(engine_request(record.resolved, record.num_images), no_progress)
        except GenerationFailed as exc:
            self._save_failed(record, started, str(exc))
            raise UpstreamError(f"{request.entry.id}: {exc}") from exc
        # 3. store, record, answer
        record.images = self._store(record.id, result)
        record.provenance = provenance.collect(request.entry, result)
        record.status, record.started_at, record.completed_at = S.SUCCEEDED.value, started, int(time.time())
        self.deps.queue.add([record])
        return self._sync_response(record, result, request.response_format)

    def _sync_response(self, record: GenerationRecord, result: EngineResult,
                       response_format: str) -> GenerateResponse:
        if response_format == "b64_json":
            images = [ImageOut(b64_json=base64.b64encode(encode_png(img)).decode(), width=img.width,
                               height=img.height) for img in result.images]
        else:
            images = self._image_urls(record)
        return GenerateResponse(model=record.model_name, created=record.completed_at or 0,
                                images=images, image_url=images[0].url if images else None,
                                generation_id=record.id)

    def _save_failed(self, record: GenerationRecord, started: int, message: str) -> None:
        record.status, record.error_message = S.FAILED.value, message
        record.started_at, record.completed_at = started, int(time.time())
        self.deps.queue.add([record])

    # ---- queue ----------------------------------------------------------------------------------

    def enqueue(self, principal: Principal, body: Any, idempotency_key: str | None = None) -> EnqueueResponse:
        request = parse(self.deps.catalog, principal, body, count_field="num_generations")
        self._check_available(request.entry)
        if idempotency_key:
            earlier = self.deps.queue.by_idempotency_key(request.namespace, idempotency_key)
            if earlier:
                return EnqueueResponse(generations=[
                    EnqueuedGeneration(generation_id=r.id, status=S(r.status)) for r in earlier])
        records = [self._record(principal, request, seeded(request.resolved, i), "queue", 1,
                                idempotency_key) for i in range(request.count)]
        self.deps.queue.add(records)
        if self.deps.workers:
            self.deps.workers.wake()
        return EnqueueResponse(generations=[
            EnqueuedGeneration(generation_id=r.id, status=S.QUEUED) for r in records])

    @staticmethod
    def _check_available(entry: ModelEntry) -> None:
        if not entry.available:
            raise ModelUnavailable(str(entry.unavailable_reason))

    def get(self, principal: Principal, generation_id: str) -> GenerationRow:
        return self.row(self._owned(principal, generation_id))

    def list_active(self, principal: Principal, status: str | None, model: str | None,
                    media_type: str | None, limit: int) -> QueueList:
        statuses = [status] if status else [S.QUEUED.value, S.PROCESSING.value]
        rows = self.deps.queue.list(RowFilter(principal.namespaces, statuses, model, media_type),
                                    limit=limit)
        return QueueList(count=len(rows), generations=[self.row(r) for r in rows])

    def history(self, principal: Principal, page: int, page_size: int, status: str | None,
                model: str | None, media_type: str | None) -> HistoryPage:
        where = RowFilter(principal.namespaces, [status] if status else [], model, media_type)
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
        self.deps.bus.publish(record.namespace, EventName.CANCELLED, self._event(record, S.CANCELLED))
        return CancelResponse(generation_id=generation_id)

    def _owned(self, principal: Principal, generation_id: str) -> GenerationRecord:
        record = self.deps.queue.get(generation_id)
        if record is None:
            raise NotFound(f"Generation not found: {generation_id}")
        if record.namespace not in principal.namespaces:
            raise Forbidden(f"generation {generation_id} belongs to another namespace")
        return record

    # ---- the worker's side ----------------------------------------------------------------------

    def run_job(self, record: GenerationRecord) -> None:
        """Run one claimed job to its end: succeeded, failed, or silently dropped if cancelled."""
        bus = self.deps.bus
        bus.publish(record.namespace, EventName.STARTED, self._event(record, S.PROCESSING))
        try:
            entry = self.deps.catalog.get(record.model_name)
            result = entry.ready_engine().generate(
                engine_request(record.resolved, record.num_images), self._progress(record))
        except GenerationCancelled:
            return  # the cancel already ended the row and published its event
        except (GenerationFailed, ImagehubError) as exc:
            return self._fail(record, str(getattr(exc, "detail", exc)))
        except Exception as exc:
            log.exception("generation %s failed", record.id)
            return self._fail(record, f"engine error: {type(exc).__name__}: {exc}")
        images = self._store(record.id, result)
        if not self.deps.queue.finish(record.id, images, provenance.collect(entry, result)):
            self.deps.storage.delete_prefix(record.id)  # cancelled after the last step: keep nothing
            return
        record.images, record.status = images, S.SUCCEEDED.value
        payload = self._event(record, S.SUCCEEDED)
        payload["url"] = self._image_urls(record)[0].url
        bus.publish(record.namespace, EventName.COMPLETED, payload)

    def _progress(self, record: GenerationRecord):  # type: ignore[no-untyped-def]
        def on_step(step: int, total: int) -> None:
            if not self.deps.queue.report_progress(record.id, step / max(total, 1)):
                raise GenerationCancelled(record.id)
            payload = self._event(record, S.PROCESSING)
            payload.update(step=step, total_steps=total, progress=round(step / max(total, 1), 4))
            self.deps.bus.publish(record.namespace, EventName.PROGRESS, payload)
        return on_step

    def _fail(self, record: GenerationRecord, message: str) -> None:
        if self.deps.queue.fail(record.id, message):
            payload = self._event(record, S.FAILED)
            payload["error"] = message
            self.deps.bus.publish(record.namespace, EventName.COMPLETED, payload)

    def publish_recovered_failures(self, failed: list[GenerationRecord]) -> None:
        for record in failed:
            payload = self._event(record, S.FAILED)
            payload["error"] = record.error_message
            self.deps.bus.publish(record.namespace, EventName.COMPLETED, payload)

    # ---- shaping --------------------------------------------------------------------------------

    def _record(self, principal: Principal, request: ParsedRequest, resolved: dict[str, Any],
                source: str, num_images: int, idempotency_key: str | None = None) -> GenerationRecord:
        now = time.time_ns()
        return GenerationRecord(
            id=str(uuid.uuid4()), namespace=request.namespace, key_id=principal.key_id,
            model_name=request.entry.id, media_type="image", source=source,
            prompt=request.params.get("prompt"), params=request.params, resolved=resolved,
            provenance={}, status=S.QUEUED.value, num_images=num_images, images=[],
            attempts=0, idempotency_key=idempotency_key, enqueued_at=now // 1_000_000_000,
            order_key=now,
        )

    def _store(self, generation_id: str, result: EngineResult) -> list[dict[str, Any]]:
        stored = []
        for index, image in enumerate(result.images):
            key = f"{generation_id}/{index}.png"
            self.deps.storage.put(key, encode_png(image), "image/png")
            stored.append({"key": key, "width": image.width, "height": image.height})
        return stored

    def _image_urls(self, record: GenerationRecord) -> list[ImageOut]:
        return [ImageOut(url=self.deps.signer.url(record.id, image["key"].rsplit("/", 1)[1]),
                         width=image["width"], height=image["height"]) for image in record.images]

    def row(self, record: GenerationRecord) -> GenerationRow:
        images = self._image_urls(record) if record.status == S.SUCCEEDED.value else []
        fields: dict[str, Any] = {k: _echo(v) for k, v in record.params.items()}
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


def _echo(value: Any) -> Any:
    """A carried param as rows echo it: data URIs are shortened, everything else verbatim."""
    if isinstance(value, list):
        return [_echo(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > 64:
        return f"{value[:value.find(',') + 1]}...({len(value)} chars)"
    return value
