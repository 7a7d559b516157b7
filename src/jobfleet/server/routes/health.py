"""Liveness and readiness (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from jobfleet.errors import ServiceUnavailable
from jobfleet.server.deps import Svc

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The server can reach its database")
async def readyz(svc: Svc) -> dict[str, str]:
    try:
        await run_in_threadpool(svc.store.last_event_id)
    except Exception as exc:
        raise ServiceUnavailable(f"database not reachable: {type(exc).__name__}") from exc
    return {"status": "ok", "backend": svc.store.backend}
