"""The worker protocol's messages as JSON (pure): what `worker/http.py` sends and the
`/v1/workers/...` routes answer. Both sides use these functions, so they cannot drift apart."""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any

from jobfleet.failures import FailureInfo
from jobfleet.protocol import (
    Assignment,
    Capacity,
    Checkpoint,
    Finished,
    LogAck,
    LogChunk,
    ReportResult,
    Started,
    Sync,
)

Json = dict[str, Any]


def capacity_json(c: Capacity) -> Json:
    return {"cpu_milli": c.cpu_milli, "memory": c.memory, "gpu": c.gpu}


def started_json(s: Started) -> Json:
    return asdict(s)


def finished_json(f: Finished) -> Json:
    body = asdict(f)
    body["failure"] = f.failure.as_dict() if f.failure else None
    return body


def started_from(body: Json) -> Started:
    return Started(str(body["run_id"]), int(body["fencing"]), float(body["time"]))


def finished_from(body: Json) -> Finished:
    failure = body.get("failure")
    return Finished(
        run_id=str(body["run_id"]),
        fencing=int(body["fencing"]),
        outcome=body["outcome"],
        time=float(body["time"]),
        exit_code=body.get("exit_code"),
        signal=body.get("signal"),
        failure=FailureInfo.model_validate(failure) if failure else None,
        outputs=body.get("outputs"),
    )


def checkpoint_json(c: Checkpoint) -> Json:
    return asdict(c)


def checkpoint_from(body: Json) -> Checkpoint:
    return Checkpoint(
        str(body["run_id"]), int(body["fencing"]), str(body["value"]), float(body["time"])
    )


def sync_json(s: Sync) -> Json:
    return {
        "assignments": [asdict(a) for a in s.assignments],
        "orders": dict(s.orders),
        "stop": list(s.stop),
    }


def sync_from(body: Json) -> Sync:
    return Sync(
        assignments=[Assignment(**a) for a in body.get("assignments", [])],
        orders=dict(body.get("orders", {})),
        stop=list(body.get("stop", [])),
    )


def report_json(r: ReportResult) -> Json:
    return {"accepted": list(r.accepted), "refused": dict(r.refused)}


def report_from(body: Json) -> ReportResult:
    return ReportResult(list(body.get("accepted", [])), dict(body.get("refused", {})))


def log_chunk_json(c: LogChunk) -> Json:
    """Log bytes travel as base64: a job may write anything, not only UTF-8."""
    return {
        "run_id": c.run_id,
        "fencing": c.fencing,
        "stream": c.stream,
        "offset": c.offset,
        "data": base64.b64encode(c.data).decode(),
    }


def log_chunk_from(body: Json) -> LogChunk:
    data = body["data"]
    raw = data if isinstance(data, bytes) else base64.b64decode(data, validate=True)
    return LogChunk(
        str(body["run_id"]), int(body["fencing"]), body["stream"], int(body["offset"]), raw
    )


def log_ack_json(a: LogAck) -> Json:
    return {"acked": a.acked, "refused": a.refused}


def log_ack_from(body: Json) -> LogAck:
    acked = {run: {s: int(n) for s, n in v.items()} for run, v in body.get("acked", {}).items()}
    return LogAck(acked, dict(body.get("refused", {})))
