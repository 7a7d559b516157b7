"""Liveness and readiness (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from jobfleet.errors import ServiceUnavailable
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import problems
from jobfleet.server.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The server can reach its database",
    response_model=None,
    responses={200: {"model": Ready}, **problems(503)},
)
async def readyz(svc: Svc) -> dict[str, str]:
    try:
        await run_in_threadpool(svc.store.last_event_id)
    except Exception as exc:
        raise ServiceUnavailable(f"database not reachable: {type(exc).__name__}") from exc
    return {"status": "ok", "backend": svc.store.backend}
