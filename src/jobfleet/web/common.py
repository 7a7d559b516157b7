"""What every dashboard route shares: the templates, the store, the job filter of a URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from jobfleet.errors import InvalidInput
from jobfleet.lifecycle import JobState
from jobfleet.server.deps import Services
from jobfleet.store import JobFilter
from jobfleet.web import format

HERE = Path(__file__).parent
MAX_TEXT = 200  # as the API's `q`
templates = Jinja2Templates(directory=HERE / "templates")
format.install(templates.env)
templates.env.globals["STATES"] = [s.value for s in JobState]
templates.env.globals["TERMINAL"] = [s.value for s in JobState if s.terminal]
# The jobs table's columns (key, heading); app.js lets people choose which to show.
templates.env.globals["COLUMNS"] = [
    ("job", "Job"),
    ("state", "State"),
    ("queue", "Queue"),
    ("job_set", "Job set"),
    ("labels", "Labels"),
    ("priority", "Priority"),
    ("attempt", "Attempt"),
    ("resources", "Resources"),
    ("worker", "Worker"),
    ("submitted", "Submitted"),
    ("duration", "Duration"),
]


def svc(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("path", request.url.path)
    context.setdefault("now", time.time())
    return templates.TemplateResponse(request, name, context, status_code=status)


def job_filter(params: dict[str, Any]) -> JobFilter:
    """The table's filter from query or form fields; bad values name their field."""
    states = [s for s in params.get("state") or [] if s]
    for s in states:
        if s not in JobState.__members__:
            raise InvalidInput(f"state: unknown state {s!r}", [{"loc": ["state"], "msg": s}])
    labels: dict[str, str] = {}
    for item in params.get("label") or []:
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"label: {item!r} is not k=v", [{"loc": ["label"], "msg": item}])
        labels[key.strip()] = value.strip()
    text = (params.get("q") or "").strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"q: at most {MAX_TEXT} characters", [{"loc": ["q"], "msg": "too long"}])
    return JobFilter(
        queue=params.get("queue") or None,
        job_set=params.get("job_set") or None,
        states=states,
        labels=labels,
        text=text or None,
    )


def filter_params(request: Request) -> dict[str, Any]:
    """Query fields as the filter wants them (multi-valued: state, label)."""
    qp = request.query_params
    out: dict[str, Any] = {k: qp.get(k, "") for k in ("queue", "job_set", "q", "sort")}
    out["state"] = qp.getlist("state")
    out["label"] = [v for v in qp.getlist("label") if v]
    return out
