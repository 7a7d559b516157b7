"""GET /v1/usage: resources x time of runs over a window, grouped (PRODUCT.md §14.3)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from jobfleet.errors import InvalidInput
from jobfleet.server.deps import Svc
from jobfleet.server.permissions import Caller, visible_queues
from jobfleet.server.schemas import Usage
from jobfleet.store.usage import GroupBy, UsageQuery
from jobfleet.store.views import iso
from jobfleet.units import parse_duration

router = APIRouter(prefix="/v1", tags=["usage"])
DEFAULT_WINDOW = 86400.0


def parse_time(value: str, field: str, now: float) -> float:
    """An RFC 3339 time, or a duration before now ("24h", "7d")."""
    text = value.strip()
    try:
        if "T" in text or "-" in text[1:]:
            when = datetime.fromisoformat(text)
            if when.tzinfo is None:
                raise ValueError(f"{value!r} has no time zone: add Z or an offset")
            return when.timestamp()
        return now - parse_duration(text)
    except ValueError as exc:
        raise InvalidInput(
            f"{field}: {exc}",
            [{"loc": ["query", field], "msg": "an RFC 3339 time, or a duration before now"}],
        ) from exc


@router.get(
    "/usage",
    summary="Usage: what runs reserved over a window, per group",
    response_model=None,
    responses={200: {"model": Usage}},
)
async def usage(
    svc: Svc,
    caller: Caller,
    since: Annotated[str | None, Query(description="RFC 3339 time or '24h' (ago)")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or '1h' (ago); now")] = None,
    group_by: GroupBy = "queue",
) -> dict[str, Any]:
    """Each item: `group`, `runs`, `succeeded`, `failed`, `cpu_seconds`, `memory_gib_seconds`,
    `gpu_seconds`, `wall_seconds`. A principal sees only the queues it may watch."""
    now = time.time()
    end = parse_time(until, "until", now) if until else now
    start = parse_time(since, "since", now) if since else end - DEFAULT_WINDOW
    if end < start:
        raise InvalidInput(
            "until is before since",
            [{"loc": ["query", "until"], "msg": "until must not be before since"}],
        )
    q = UsageQuery(start, end, group_by, visible_queues(caller))
    items = await run_in_threadpool(svc.store.usage, q)
    return {"since": iso(start), "until": iso(end), "group_by": group_by, "items": items}
