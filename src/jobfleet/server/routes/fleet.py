"""/v1/workers and /v1/shards: the worker protocol over HTTP, and the fleet views.

A worker registers, then syncs (heartbeat + reconcile + poll in one call: the reply carries its
new leases, its cancel/preempt orders and the runs it must stop), and reports starts and ends,
each carrying the lease's fencing token: a report under an expired or superseded lease is
refused, so a run can never end twice. Drain and deregistration are state changes. A worker
on another machine ships its runs' logs, fenced the same way (store/logs.py).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, field_validator, model_validator

from jobfleet import wire
from jobfleet.failures import FailureInfo
from jobfleet.inputs import Bounded
from jobfleet.models import LABEL_KEY_RE, MAX_GPU, NAME_RE
from jobfleet.protocol import CHECKPOINT_LIMIT, LOG_CHUNK_LIMIT, LOG_REQUEST_LIMIT, Capacity
from jobfleet.server.auth import Caller
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import problems
from jobfleet.server.permissions import WorkerCaller, check_worker
from jobfleet.server.schemas import (
    LogAck,
    Registered,
    ReportAnswer,
    ShardList,
    SyncAnswer,
    WaitAnswer,
    WorkerList,
    WorkerStateAnswer,
)

router = APIRouter(prefix="/v1", tags=["fleet"])
WORKER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
MAX_RUNS = 100_000


class _Body(Bounded):
    """Unknown fields are refused (422 naming them), as anything `jobfleet.inputs` refuses."""


class CapacityBody(_Body):
    cpu_milli: int = Field(gt=0, le=1024 * 1000 * 64)
    memory: int = Field(gt=0, le=2**56)
    gpu: int = Field(default=0, ge=0, le=MAX_GPU * 64)


class RegisterBody(_Body):
    name: str = Field(pattern=WORKER_NAME)
    # The random identity the worker keeps in its data dir: a live worker's name cannot be
    # taken by a process of another identity (409); the same identity is a restart.
    identity: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")
    shard: str = Field(default="default", pattern=NAME_RE)
    capacity: CapacityBody
    labels: dict[str, Annotated[str, Field(max_length=256)]] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not LABEL_KEY_RE.match(key):
                raise ValueError(f"label key {key!r} is not a valid name")
        return v


class SyncBody(_Body):
    incarnation: str | None = Field(default=None, max_length=64)
    held: list[str] = Field(default_factory=list, max_length=MAX_RUNS)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_RUNS)
    renew: bool = False


class WaitBody(_Body):
    seen: str | None = Field(default=None, max_length=64)
    timeout: float = Field(default=20.0, ge=0, le=60)


class OutputBody(_Body):
    path: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0, le=2**62)


class StartedBody(_Body):
    run_id: str = Field(max_length=64)
    fencing: int
    time: float


class FinishedBody(StartedBody):
    outcome: Literal["succeeded", "failed", "cancelled"]
    exit_code: int | None = None
    signal: int | None = None
    failure: FailureInfo | None = None
    outputs: list[OutputBody] | None = Field(default=None, max_length=10_000)


class CheckpointBody(StartedBody):
    value: str = Field(max_length=CHECKPOINT_LIMIT)


class ReportBody(_Body):
    started: list[StartedBody] = Field(default_factory=list, max_length=MAX_RUNS)
    finished: list[FinishedBody] = Field(default_factory=list, max_length=MAX_RUNS)
    checkpoints: list[CheckpointBody] = Field(default_factory=list, max_length=MAX_RUNS)


class LogChunkBody(_Body):
    run_id: str = Field(max_length=64)
    fencing: int
    stream: Literal["stdout", "stderr"]
    offset: int = Field(ge=0, le=2**62)
    data: str = Field(max_length=(LOG_CHUNK_LIMIT + 2) // 3 * 4, description="base64")

    @field_validator("data")
    @classmethod
    def _base64(cls, v: str) -> str:
        try:
            base64.b64decode(v, validate=True)
        except binascii.Error as exc:
            raise ValueError("data must be base64") from exc
        return v


class LogsBody(_Body):
    chunks: list[LogChunkBody] = Field(max_length=256)

    @model_validator(mode="after")
    def _bounded(self) -> LogsBody:
        if sum(len(c.data) for c in self.chunks) > LOG_REQUEST_LIMIT * 4 // 3 + 4 * 256:
            raise ValueError(f"at most {LOG_REQUEST_LIMIT} bytes of log data per request")
        return self


class StateBody(_Body):
    state: Literal["READY", "DRAINING", "OFFLINE"]
    incarnation: str | None = Field(default=None, max_length=64)


@router.post(
    "/workers",
    status_code=201,
    summary="Register a worker (again)",
    response_model=None,
    responses={201: {"model": Registered}, **problems(409)},
)
async def register(body: RegisterBody, svc: Svc, who: WorkerCaller) -> dict[str, Any]:
    check_worker(who, body.name)
    c = body.capacity
    incarnation = await run_in_threadpool(
        svc.store.register_worker,
        body.name,
        body.shard,
        Capacity(c.cpu_milli, c.memory, c.gpu),
        labels=body.labels,
        info=body.info,
        identity=body.identity,
        alive_within=svc.settings.lease_timeout,
    )
    return {
        "name": body.name,
        "incarnation": incarnation,
        "lease_timeout": svc.settings.lease_timeout,
    }


@router.post(
    "/workers/{name}/sync",
    summary="Heartbeat, reconcile and poll in one call",
    response_model=None,
    responses={200: {"model": SyncAnswer}, **problems(409)},
)
async def sync(name: str, body: SyncBody, svc: Svc, who: WorkerCaller) -> dict[str, Any]:
    check_worker(who, name)
    answer = await run_in_threadpool(
        svc.store.sync,
        name,
        incarnation=body.incarnation,
        held=body.held,
        exclude=body.exclude,
        renew=body.renew,
        lease_timeout=svc.settings.lease_timeout,
    )
    return {**wire.sync_json(answer), "lease_timeout": svc.settings.lease_timeout}


@router.post(
    "/workers/{name}/wait",
    summary="Wait until a lease or kill order may be there",
    response_model=None,
    responses={200: {"model": WaitAnswer}},
)
async def wait(name: str, body: WaitBody, svc: Svc, who: WorkerCaller) -> dict[str, Any]:
    """A long poll: answers at once if a lease or kill order was written (for any worker)
    since `seen`, else when one is, or after `timeout` seconds; the worker then syncs. The
    answer's `seen` goes into the next call."""
    check_worker(who, name)
    return {"seen": await svc.leases.wait_past(body.seen, body.timeout)}


@router.post(
    "/workers/{name}/report",
    summary="Starts and ends of runs, fenced",
    response_model=None,
    responses={200: {"model": ReportAnswer}},
)
async def report(name: str, body: ReportBody, svc: Svc, who: WorkerCaller) -> dict[str, Any]:
    check_worker(who, name)
    started = [wire.started_from(s.model_dump()) for s in body.started]
    finished = [wire.finished_from(f.model_dump()) for f in body.finished]
    checkpoints = [wire.checkpoint_from(c.model_dump()) for c in body.checkpoints]
    result = await run_in_threadpool(svc.store.report, name, started, finished, checkpoints)
    return wire.report_json(result)


@router.post(
    "/workers/{name}/logs",
    summary="New bytes of runs' logs, fenced",
    response_model=None,
    responses={200: {"model": LogAck}},
)
async def ship_logs(name: str, body: LogsBody, svc: Svc, who: WorkerCaller) -> dict[str, Any]:
    check_worker(who, name)
    chunks = [wire.log_chunk_from(c.model_dump()) for c in body.chunks]
    limit = svc.settings.stored_log_limit
    ack = await run_in_threadpool(lambda: svc.store.store_log_chunks(name, chunks, limit=limit))
    return wire.log_ack_json(ack)


@router.post(
    "/workers/{name}/state",
    summary="Drain (DRAINING), deregister (OFFLINE), READY",
    response_model=None,
    responses={200: {"model": WorkerStateAnswer}, **problems(409)},
)
async def set_state(name: str, body: StateBody, svc: Svc, who: WorkerCaller) -> dict[str, Any]:
    check_worker(who, name)
    await run_in_threadpool(
        svc.store.set_worker_state, name, body.state, incarnation=body.incarnation
    )
    return {"name": name, "state": body.state}


@router.get(
    "/workers",
    summary="Workers: shard, state, capacity, allocation, heartbeat",
    response_model=None,
    responses={200: {"model": WorkerList}},
)
async def list_workers(svc: Svc, _: Caller) -> dict[str, Any]:
    fresh_after = time.time() - svc.settings.lease_timeout
    items = await run_in_threadpool(svc.store.worker_views, fresh_after=fresh_after)
    cordons = await run_in_threadpool(svc.store.cordons)
    for item in items:  # who cordoned or drained it, since when, when a drain evicts
        item["cordon"] = cordons.get(item["name"])
    return {"items": items}


@router.get(
    "/shards",
    summary="Shards: labels, workers, capacity, allocation, queue",
    response_model=None,
    responses={200: {"model": ShardList}},
)
async def list_shards(svc: Svc, _: Caller) -> dict[str, Any]:
    fresh_after = time.time() - svc.settings.lease_timeout
    items = await run_in_threadpool(svc.store.shard_views, fresh_after=fresh_after)
    return {"items": items}
