"""``/healthz`` (alive), ``/readyz`` (store, queue, engines) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from imagehub.api.deps import hub
from imagehub.services.hub import Hub

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(h: Hub = Depends(hub)) -> JSONResponse:
    checks: dict[str, object] = {}
    try:
        with h.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["store"] = "ok"
        checks["queue"] = h.queue.depth()
    except Exception as exc:  # readiness reports, it does not raise
        checks["store"] = f"error: {exc}"
    checks["storage"] = h.deps.storage.problem() or "ok"
    checks["engines"] = {e.id: "available" if e.available else e.unavailable_reason
                         for e in h.deps.catalog.all()}
    ready = checks["store"] == "ok" and checks["storage"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    request.app.state.metrics.refresh(request.app.state.hub)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
