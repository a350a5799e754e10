"""The durable queue: generation rows in the relational store.

``JobQueue`` is the seam for scale-out (a later issue puts Celery on Redis behind it); ``SqlQueue``
is the single-machine implementation. A job moves ``queued → processing`` by an atomic conditional
update, so two workers never take the same job; every later transition is conditional on the row
still being ``processing``, which is how a cancel that lands mid-run wins over the worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    Text,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from imagehub.db.records import GenerationRecord, IdempotencyKeyRecord
from imagehub.protocol import GenerationStatus as S

_ACTIVE = (S.QUEUED.value, S.PROCESSING.value)
_TABLE = GenerationRecord.__table__
_KEYS = IdempotencyKeyRecord.__table__
_C = _TABLE.c
_IDS = bindparam("ids", expanding=True)

# The statements every job runs, built once and run on a Core connection: built per call and run
# through a Session, SQLAlchemy's own work (building, cache keys, the ORM's session
# synchronisation) cost more CPU than SQLite's (a claim 2.1 ms, now 0.7; a batch of 16's finish
# 2.3 ms, now 1.3; its step 1.6 ms, now 0.45), much of it under the GIL that serving needs.
_INSERT = insert(_TABLE)
_OLDEST_QUEUED = (select(_C.id).where(_C.status == S.QUEUED.value).order_by(_C.order_key)
                  .limit(1))
_MODELS = bindparam("models", expanding=True)
_OLDEST_OF = (select(_C.id).where(_C.status == S.QUEUED.value, _C.model_name.in_(_MODELS))
              .order_by(_C.order_key + 0).limit(1))
"""The oldest queued row of ``models``: by the (status, model_name, order_key) index, their rows
alone, sorted (``+ 0`` keeps SQLite from walking the whole queue by (status, order_key))."""
_OLDEST_BUT = _OLDEST_QUEUED.where(_C.model_name.not_in(_MODELS))
_CANDIDATES = (select(_C.id, _C.resolved)
               .where(_C.status == S.QUEUED.value, _C.model_name == bindparam("model"))
               .order_by(_C.order_key).limit(bindparam("window")))
_CLAIM = (update(_TABLE).where(_C.id.in_(_IDS), _C.status == S.QUEUED.value)
          .values(status=S.PROCESSING.value, started_at=bindparam("now"),
                  attempts=_C.attempts + 1, progress=0.0)
          .returning(*_C))
"""``queued → processing`` of the rows still queued among ``ids``, which it returns."""
_PROGRESS = (update(_TABLE).where(_C.id.in_(_IDS), _C.status == S.PROCESSING.value)
             .values(progress=bindparam("progress")).returning(_C.id))
"""A step of rows still processing, whose ids it returns (the others were cancelled)."""
_FINISH = (update(_TABLE)
           .where(_C.id == bindparam("row_id"), _C.status == S.PROCESSING.value)
           .values(status=S.SUCCEEDED.value, images=bindparam("images"),
                   provenance=bindparam("provenance"), progress=1.0,
                   completed_at=bindparam("now")))
"""``finish`` of one row, run for a batch's rows as one executemany."""
_SUCCEEDED = select(_C.id).where(_C.id.in_(_IDS), _C.status == S.SUCCEEDED.value)
_BATCH_WINDOW = 256
"""How many queued rows of a model past ``limit`` a batch claim looks through for compatible ones."""
_SQL_INT_MAX = 2**63 - 1
"""The largest OFFSET or LIMIT the database takes (a signed 64-bit INTEGER): a page past it is
past every row anyway."""


@dataclass
class RowFilter:
    """Which rows a listing wants."""

    namespaces: Sequence[str]
    statuses: Sequence[str] = ()
    model: str | None = None
    media_type: str | None = None


@dataclass(frozen=True)
class Lane:
    """The queued rows one worker pool takes: those of ``models``, or with ``excluded`` all but
    theirs (the remote models' pool and the local models')."""

    models: frozenset[str]
    excluded: bool = False


@dataclass
class Recovery:
    requeued: list[str]
    failed: list[GenerationRecord]


class JobQueue(Protocol):
    """What the services and the worker need of a queue."""

    def add(self, records: Sequence[GenerationRecord]) -> None: ...
    def add_under_key(self, namespace: str, key: str, records: Sequence[GenerationRecord]) -> bool: ...
    def claim(self, lane: Lane | None = None) -> GenerationRecord | None: ...
    def claim_batch(self, model: str, key: Hashable, limit: int,
                    key_of: Callable[[dict[str, Any]], Hashable]) -> list[GenerationRecord]: ...
    def report_progress(self, generation_id: str, progress: float) -> bool: ...
    def report_progress_many(self, generation_ids: Sequence[str], progress: float) -> set[str]: ...
    def finish(self, generation_id: str, images: list[dict[str, Any]], provenance: dict[str, Any]) -> bool: ...
    def finish_many(self, outcomes: Sequence[tuple[str, list[dict[str, Any]], dict[str, Any]]]) -> set[str]: ...
    def fail(self, generation_id: str, message: str) -> bool: ...
    def cancel(self, generation_id: str) -> bool: ...
    def recover(self, max_attempts: int) -> Recovery: ...
    def requeue_processing(self) -> list[str]: ...


class SqlQueue:
    """Queue and row store over SQLAlchemy (SQLite by default)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._engine = sessions.kw["bind"]
        sqlite = sessions.kw["bind"].dialect.name == "sqlite"
        self._writer: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()
        """SQLite takes one writer at a time, and a writer that finds the database locked sleeps in
        SQLite's busy handler (1, 2, 5, 10, ... ms) before it tries again. One lock per process
        queues this process's writers instead (``bench/queue_claims.py``: 16 threads adding rows,
        p99 104 ms without it); other processes still meet the busy handler."""
        self._adds: list[tuple[list[dict[str, Any]], Future[None]]] = []
        self._adds_lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction (one at a time in this process on SQLite)."""
        with self._writer, self._sessions.begin() as session:
            yield session

    @contextmanager
    def _write_core(self) -> Iterator[Connection]:
        """A write transaction on a Core connection, for the statements built once."""
        with self._writer, self._engine.begin() as connection:
            yield connection

    # ---- writes ---------------------------------------------------------------------------------

    def add(self, records: Sequence[GenerationRecord]) -> None:
        """Insert ``records``; returns once they are committed. Calls that arrive while a write is
        running share the next transaction (a group commit: a batch's sync calls end together)."""
        columns = _TABLE.columns.keys()
        mine: Future[None] = Future()
        with self._adds_lock:
            self._adds.append(([{c: getattr(r, c) for c in columns} for r in records], mine))
        with self._writer:
            with self._adds_lock:
                group, self._adds = self._adds, []
            if group:  # else an earlier caller's group took ours
                self._insert(group)
        mine.result()

    def _insert(self, group: list[tuple[list[dict[str, Any]], Future[None]]]) -> None:
        """One transaction for the group; if it fails, each call's rows alone, so one bad call
        fails alone. Inside the writer lock."""
        try:
            with self._engine.begin() as connection:  # on the table: no ORM bulk-insert machinery
                connection.execute(_INSERT, [row for rows, _ in group for row in rows])
        except Exception as exc:  # noqa: BLE001 - told to each call
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            for rows, done in group:
                self._insert([(rows, done)])
            return
        for _, done in group:
            done.set_result(None)

    def add_under_key(self, namespace: str, key: str, records: Sequence[GenerationRecord]) -> bool:
        """Take ``key`` (an Idempotency-Key) and insert ``records`` in one transaction; False, with
        nothing inserted, when the key was taken already (by this process or another)."""
        columns = _TABLE.columns.keys()
        try:
            with self._write() as session:
                session.execute(insert(_KEYS).values(namespace=namespace, idempotency_key=key,
                                                     created_at=int(time.time())))
                session.execute(insert(_TABLE), [{c: getattr(r, c) for c in columns} for r in records])
        except IntegrityError:
            with self._sessions() as session:
                if session.get(IdempotencyKeyRecord, (namespace, key)) is None:
                    raise  # not the key: a bug to see
            return False
        return True

    def claim(self, lane: Lane | None = None) -> GenerationRecord | None:
        """Take the oldest queued job (of ``lane``): ``queued → processing``, one more attempt."""
        oldest, params = _OLDEST_QUEUED, {}
        if lane is not None and not lane.models and not lane.excluded:
            return None  # no model: no read (the remote models' pool where no provider is set)
        if lane is not None and lane.models:
            oldest = _OLDEST_BUT if lane.excluded else _OLDEST_OF
            params = {"models": sorted(lane.models)}
        while True:
            with self._write_core() as connection:
                row_id = connection.scalar(oldest, params)
                if row_id is None:
                    return None
                taken = self._take(connection, [row_id])
                if taken:
                    return taken[0]

    def claim_batch(self, model: str, key: Hashable, limit: int,
                    key_of: Callable[[dict[str, Any]], Hashable]) -> list[GenerationRecord]:
        """Take up to ``limit`` of the oldest queued jobs of ``model`` whose ``key_of(resolved)`` is
        ``key`` (jobs that can run as one batch), by one conditional update like ``claim``'s: a job
        another worker took meanwhile is left out."""
        if limit < 1:
            return []
        with self._write_core() as connection:
            candidates = connection.execute(
                _CANDIDATES, {"model": model, "window": _BATCH_WINDOW + limit}).all()
            wanted = [row_id for row_id, resolved in candidates if key_of(resolved) == key][:limit]
            if not wanted:
                return []
            return sorted(self._take(connection, wanted), key=lambda row: row.order_key)

    @staticmethod
    def _take(connection: Connection, ids: list[str]) -> list[GenerationRecord]:
        """The rows among ``ids`` still queued, now processing (one statement)."""
        taken = connection.execute(_CLAIM, {"ids": ids, "now": int(time.time())})
        return [GenerationRecord(**row._mapping) for row in taken]

    def report_progress(self, generation_id: str, progress: float) -> bool:
        """Record progress; False when the row is no longer processing (it was cancelled)."""
        return bool(self.report_progress_many([generation_id], progress))

    def report_progress_many(self, generation_ids: Sequence[str], progress: float) -> set[str]:
        """Record one progress for many rows in one statement; the ids still processing (the
        others were cancelled)."""
        with self._write_core() as connection:
            return set(connection.scalars(
                _PROGRESS, {"ids": list(generation_ids), "progress": progress}))

    def finish(self, generation_id: str, images: list[dict[str, Any]], provenance: dict[str, Any]) -> bool:
        return bool(self.finish_many([(generation_id, images, provenance)]))

    def finish_many(self, outcomes: Sequence[tuple[str, list[dict[str, Any]], dict[str, Any]]]) -> set[str]:
        """``finish`` for a batch's rows (id, images, provenance) in one transaction; the ids that
        were still processing and are now succeeded (the others were cancelled meanwhile)."""
        if not outcomes:
            return set()
        now = int(time.time())
        values = [{"row_id": generation_id, "images": images, "provenance": provenance, "now": now}
                  for generation_id, images, provenance in outcomes]
        with self._write_core() as connection:
            connection.execute(_FINISH, values)  # one executemany, each row's update conditional
            return set(connection.scalars(_SUCCEEDED, {"ids": [v["row_id"] for v in values]}))

    def fail(self, generation_id: str, message: str) -> bool:
        """``processing → failed`` (a job that went back to the queue at a stop is not failed)."""
        return self._transition(
            generation_id, (S.PROCESSING.value,), status=S.FAILED.value, error_message=message,
            completed_at=int(time.time()),
        )

    def cancel(self, generation_id: str) -> bool:
        """``queued | processing → cancelled``; False when the row had already ended."""
        return self._transition(
            generation_id, _ACTIVE, status=S.CANCELLED.value, completed_at=int(time.time()),
        )

    def recover(self, max_attempts: int) -> Recovery:
        """After a crash: rows left ``processing`` run again, or fail after ``max_attempts``."""
        with self._write() as session:
            stuck = session.scalars(
                select(GenerationRecord).where(GenerationRecord.status == S.PROCESSING.value)
            ).all()
            requeued, failed = [], []
            for row in stuck:
                if row.attempts >= max_attempts:
                    row.status = S.FAILED.value
                    row.completed_at = int(time.time())
                    row.error_message = (
                        f"the server stopped while this generation was processing, "
                        f"{row.attempts} time(s); giving up after max_attempts={max_attempts}"
                    )
                    failed.append(row)
                else:
                    row.status, row.started_at, row.progress = S.QUEUED.value, None, None
                    requeued.append(row.id)
        return Recovery(requeued=requeued, failed=failed)

    def requeue_processing(self) -> list[str]:
        """At a graceful stop: rows ``processing`` go back to ``queued``, and the attempt they were
        on is not counted (``MAX_ATTEMPTS`` counts crashes). Their running engines see the change
        at their next step (``report_progress`` is False) and drop them."""
        with self._write() as session:
            ids = list(session.scalars(
                select(GenerationRecord.id).where(GenerationRecord.status == S.PROCESSING.value)))
            if ids:
                session.execute(
                    update(GenerationRecord)
                    .where(GenerationRecord.id.in_(ids), GenerationRecord.status == S.PROCESSING.value)
                    .values(status=S.QUEUED.value, started_at=None, progress=None,
                            attempts=case((GenerationRecord.attempts > 0, GenerationRecord.attempts - 1),
                                          else_=0)))
            return ids

    def _transition(self, generation_id: str, from_states: Sequence[str], **values: Any) -> bool:
        with self._write() as session:
            return bool(session.execute(
                update(GenerationRecord)
                .where(GenerationRecord.id == generation_id, GenerationRecord.status.in_(from_states))
                .values(**values)
            ).rowcount)

    # ---- retention ------------------------------------------------------------------------------

    def ended_before(self, cutoff: int, limit: int) -> list[str]:
        """Up to ``limit`` generations that ended before ``cutoff`` (Unix seconds), oldest first."""
        with self._sessions() as session:
            return list(session.scalars(
                select(GenerationRecord.id)
                .where(GenerationRecord.status.not_in(_ACTIVE), GenerationRecord.completed_at < cutoff)
                .order_by(GenerationRecord.completed_at).limit(limit)))

    def delete_ended(self, generation_ids: Sequence[str]) -> int:
        """Delete the ended rows among ``generation_ids`` (an open one stays), and the
        Idempotency-Keys they were queued under that no row is left under; how many rows."""
        ended = _C.id.in_(list(generation_ids)), _C.status.not_in(_ACTIVE)
        no_rows = ~exists().where(_C.namespace == _KEYS.c.namespace,
                                  _C.idempotency_key == _KEYS.c.idempotency_key)
        with self._write_core() as connection:
            keys = connection.execute(select(_C.namespace, _C.idempotency_key).distinct()
                                      .where(*ended, _C.idempotency_key.is_not(None))).all()
            deleted = connection.execute(delete(_TABLE).where(*ended)).rowcount
            if keys:  # by primary key, not a scan of every key
                connection.execute(delete(_KEYS).where(
                    tuple_(_KEYS.c.namespace, _KEYS.c.idempotency_key).in_(keys), no_rows))
        return deleted

    def open_resolved(self, containing: str) -> list[dict[str, Any]]:
        """What the queued and processing rows whose ``resolved`` holds the text ``containing``
        run from."""
        with self._sessions() as session:
            return list(session.scalars(
                select(GenerationRecord.resolved)
                .where(GenerationRecord.status.in_(_ACTIVE),
                       cast(GenerationRecord.resolved, Text).contains(containing, autoescape=True))))

    # ---- reads ----------------------------------------------------------------------------------

    def get(self, generation_id: str) -> GenerationRecord | None:
        with self._sessions() as session:
            return session.get(GenerationRecord, generation_id)

    def changed_rows(self, since: int) -> tuple[list[GenerationRecord], list[GenerationRecord]]:
        """Queued generations now processing, and those ended at or after ``since`` (seconds),
        oldest first (``events.relay``)."""
        queued = GenerationRecord.source == "queue"
        with self._sessions() as session:
            processing = list(session.scalars(
                select(GenerationRecord).where(queued, GenerationRecord.status == S.PROCESSING.value)
                .order_by(GenerationRecord.order_key)))
            ended = list(session.scalars(
                select(GenerationRecord).where(queued, GenerationRecord.completed_at >= since)
                .order_by(GenerationRecord.completed_at, GenerationRecord.order_key)))
        return processing, ended

    def by_idempotency_key(self, namespace: str, key: str) -> list[GenerationRecord]:
        with self._sessions() as session:
            return list(session.scalars(
                select(GenerationRecord)
                .where(GenerationRecord.namespace == namespace, GenerationRecord.idempotency_key == key)
                .order_by(GenerationRecord.order_key)
            ))

    def list(self, where: RowFilter, offset: int = 0, limit: int | None = None) -> list[GenerationRecord]:
        if offset > _SQL_INT_MAX:
            return []
        limit = None if limit is None else min(limit, _SQL_INT_MAX)
        query = self._filtered(select(GenerationRecord), where).order_by(GenerationRecord.order_key.desc())
        with self._sessions() as session:
            return list(session.scalars(query.offset(offset).limit(limit)))

    def count(self, where: RowFilter) -> int:
        with self._sessions() as session:
            return session.scalar(self._filtered(select(func.count(GenerationRecord.id)), where)) or 0

    def active(self, namespace: str) -> int:
        """The namespace's queued and processing rows, counted from an index alone."""
        query = select(func.count()).select_from(GenerationRecord).where(
            GenerationRecord.namespace == namespace,
            GenerationRecord.status.in_([S.QUEUED.value, S.PROCESSING.value]))
        with self._sessions() as session:
            return session.scalar(query) or 0

    def depth(self) -> dict[str, int]:
        """Rows per active status (for /readyz and metrics)."""
        with self._sessions() as session:
            rows = session.execute(
                select(GenerationRecord.status, func.count())
                .where(GenerationRecord.status.in_(_ACTIVE)).group_by(GenerationRecord.status)
            ).all()
        return {status: n for status, n in rows}

    @staticmethod
    def _filtered(query: Any, where: RowFilter) -> Any:
        query = query.where(GenerationRecord.namespace.in_(list(where.namespaces)))
        if where.statuses:
            query = query.where(GenerationRecord.status.in_(list(where.statuses)))
        if where.model:
            query = query.where(GenerationRecord.model_name == where.model)
        if where.media_type:
            query = query.where(GenerationRecord.media_type == where.media_type)
        return query
