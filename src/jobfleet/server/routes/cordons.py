"""/v1/workers/{name}/cordon|uncordon|drain: an operator takes a worker out of service
(PRODUCT.md §14.4). Admin only: these act on the fleet, not on one queue's jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobfleet.server.deps import Svc
from jobfleet.server.permissions import AdminCaller
from jobfleet.server.schemas import WorkerCordon
from jobfleet.units import parse_duration

router = APIRouter(prefix="/v1", tags=["workers"])
MAX_DRAIN = 7 * 86400.0


class DrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float | None = Field(
        default=None,
        description="evict what still runs after this (seconds or '5m'; default: the "
        "configured worker.drain_timeout)",
    )

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: object) -> float | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValueError("a duration is a number of seconds or a string like '5m'")
        seconds = parse_duration(v)
        if seconds > MAX_DRAIN:
            raise ValueError("a drain timeout is at most 7d")
        return seconds


@router.post(
    "/workers/{name}/cordon",
    summary="No new leases for a worker; its jobs go on",
    response_model=None,
    responses={200: {"model": WorkerCordon}},
)
async def cordon(name: str, svc: Svc, caller: AdminCaller) -> dict[str, Any]:
    return await run_in_threadpool(lambda: svc.store.cordon(name, actor=caller.name))


@router.post(
    "/workers/{name}/uncordon",
    summary="A cordoned or drained worker takes leases again",
    response_model=None,
    responses={200: {"model": WorkerCordon}},
)
async def uncordon(name: str, svc: Svc, caller: AdminCaller) -> dict[str, Any]:
    return await run_in_threadpool(lambda: svc.store.uncordon(name, actor=caller.name))


@router.post(
    "/workers/{name}/drain",
    summary="Cordon, then evict what still runs after a timeout",
    response_model=None,
    responses={200: {"model": WorkerCordon}},
)
async def drain(
    name: str, svc: Svc, caller: AdminCaller, body: DrainBody | None = None
) -> dict[str, Any]:
    timeout = body.timeout if body and body.timeout is not None else None
    if timeout is None:
        timeout = svc.settings.worker.drain_timeout
    return await run_in_threadpool(
        lambda: svc.store.drain(name, timeout=timeout, actor=caller.name)
    )
