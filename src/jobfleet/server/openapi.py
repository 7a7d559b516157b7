"""The OpenAPI document: operation ids, security, errors as problem+json, the job spec.

Routes declare what they answer (`response_model=` a model of server/schemas.py, or
`responses=`); what is the same for every route is derived here, from the route itself, when
the document is built:

- **security** is FastAPI's own: the token checks (server/auth.py) depend on the bearer
  scheme, so every route that checks a token declares it; the event stream also accepts the
  dashboard's session cookie.
- **errors**, all `application/problem+json` with the `Problem` schema: 401 where a token is
  checked, 403 there too unless any valid token will do (`ANY_TOKEN`), 404 on a path with an
  id in it, 413 and 422
  where a body or parameters are read; 409 and 503 are declared by the routes that send them
  (`problems(409)`).
- **operation ids** read as names (`submitJobs`, `getJob`): `OPERATION_IDS`, else the route's
  function name in camelCase.
- the `JobSpec` schema: the submit route parses its body itself (one spec or a batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from jobfleet.models import JobSpec
from jobfleet.scheduling.periodic import ScheduleSpec
from jobfleet.server import schemas
from jobfleet.server.auth import BEARER

PROBLEM = "application/problem+json"
ANY_TOKEN = "x-any-valid-token"
"""An operation that any valid token may call (no 403): `openapi_extra={ANY_TOKEN: True}`."""
REF = "#/components/schemas/"

OPERATION_IDS = {
    "submit": "submitJobs",
    "list_jobs": "listJobs",
    "get_job": "getJob",
    "cancel": "cancelJob",
    "reprioritize": "reprioritizeJob",
    "preempt": "preemptJob",
    "retry": "retryJob",
    "cancel_job_set": "cancelJobSet",
    "job_events": "listJobEvents",
    "history": "getJobHistory",
    "events": "streamEvents",
    "logs": "getJobLogs",
    "errors": "listJobErrors",
    "checkpoints": "listJobCheckpoints",
    "job_callbacks": "listJobCallbacks",
    "register": "registerWorker",
    "sync": "syncWorker",
    "report": "reportRuns",
    "ship_logs": "shipRunLogs",
    "set_state": "setWorkerState",
    "metrics": "getMetrics",
    "get_array": "getArray",
    "cancel_array": "cancelArray",
    "cordon": "cordonWorker",
    "uncordon": "uncordonWorker",
    "drain": "drainWorker",
    "usage": "getUsage",
    "create": "createSchedule",
    "list_schedules": "listSchedules",
    "get_schedule": "getSchedule",
    "update": "updateSchedule",
    "delete": "deleteSchedule",
    "pause": "pauseSchedule",
    "resume": "resumeSchedule",
    "trigger": "triggerSchedule",
}

ERRORS = {
    401: "No valid bearer token (or session cookie, where one is accepted)",
    403: "The token's principal may not do this (a worker token on a user route, a verb it "
    "lacks on the queue, not an admin)",
    404: "No such object, or one in a queue the caller may not see",
    409: "The object's state does not allow this (a refused transition adds `state` and `actions`)",
    413: "The request body is larger than `max_request_bytes`",
    422: "The request is invalid: `errors` names each field (`loc`) and what is wrong (`msg`)",
    503: "The database cannot be reached",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for errors a route sends besides the ones derived for every route."""
    return {status: _problem(status) for status in statuses}


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": ERRORS[status],
        "content": {PROBLEM: {"schema": {"$ref": f"{REF}Problem"}}},
    }


def event_stream_doc(model: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` of an SSE route whose messages' data are `model` objects."""
    return {
        200: {
            "description": f"Server-sent events: `id:` (the event id), `event:` (its type) and "
            f"`data:` (a {model} as JSON, schema `{REF}{model}`); `: ping` comments keep an "
            "idle stream open",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }


def operation_id_for(owners: dict[str, Callable[..., Any]]) -> Callable[[APIRoute], str]:
    """FastAPI's `generate_unique_id_function`: the route's name as an operation id."""

    def operation_id(route: APIRoute) -> str:
        name = OPERATION_IDS.get(route.name) or _camel(route.name)
        if not route.include_in_schema:
            return f"{name}_{'_'.join(sorted(route.methods or ()))}_{route.path_format}"
        if owners.setdefault(name, route.endpoint) is not route.endpoint:
            # two functions of the same name: keep the ids unique
            name += "".join(_camel(p).title() for p in route.path_format.split("/") if p)
        return name

    return operation_id


def _camel(name: str) -> str:
    head, *rest = name.replace("-", "_").replace("{", "").replace("}", "").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def install(app: FastAPI) -> None:
    """Build the document once, on first use, with the additions above."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        _add_components(schema)
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                _describe(path, operation)
        _drop_unused(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_components(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    found = components.setdefault("schemas", {})
    added: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (JobSpec, "validation"),  # a request body: the submit route parses it itself
        (ScheduleSpec, "validation"),  # the same for the schedules' create route
        (schemas.Problem, "serialization"),
    ]
    for model, mode in added:
        defs = model.model_json_schema(ref_template=REF + "{model}", mode=mode)
        name = model.__name__
        for key, value in [*defs.pop("$defs", {}).items(), (name, defs)]:
            if _shape(found.setdefault(key, value)) != _shape(value):
                raise RuntimeError(f"two different schemas are named {key!r}: rename one")


def _shape(schema: Any) -> Any:
    """A schema without its defaults and descriptions (FastAPI leaves out `default: null`)."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in ("default", "description")}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _describe(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted: list[int] = []
    if any(BEARER in requirement for requirement in operation.get("security", [])):
        wanted.append(401)
        if not operation.get(ANY_TOKEN):
            wanted.append(403)
    if "{" in path:
        wanted.append(404)
    if "requestBody" in operation:
        wanted.append(413)
    # Any request may be refused at the edge (server/guard.py: a NUL byte or a lone surrogate
    # in the path or the query string), so every operation may answer 422.
    wanted.append(422)
    for code in wanted:
        responses[str(code)] = _problem(code)
    for key, answer in list(responses.items()):
        if key.startswith(("4", "5")) and "application/json" in answer.get("content", {}):
            responses[key] = _problem(int(key))  # errors are never plain JSON
    operation["responses"] = dict(sorted(responses.items()))


def _may_be_invalid(parameter: dict[str, Any]) -> bool:
    constraints = parameter.get("schema", {}).keys() - {"type", "title"}
    return parameter.get("in") != "path" or bool(constraints)


def _drop_unused(schema: dict[str, Any]) -> None:
    """FastAPI's HTTPValidationError is replaced by Problem: drop what nothing refers to."""
    found = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        rest = {k: v for k, v in schema.items() if k != "components"}
        others = {k: v for k, v in found.items() if k != name}
        if f'"{REF}{name}"' not in json.dumps([rest, others]):
            found.pop(name, None)
