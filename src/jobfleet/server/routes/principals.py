"""/v1/auth: principals and their tokens (admin only), and `whoami` (any token)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from jobfleet.access import ALL_QUEUES, Kind, Principal, Verb, expand_grants
from jobfleet.errors import InvalidInput
from jobfleet.server.auth import TokenCache, authenticate
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import ANY_TOKEN, problems
from jobfleet.server.permissions import AdminCaller
from jobfleet.server.routes.jobs import json_response
from jobfleet.server.schemas import IssuedToken, PrincipalInfo, PrincipalList, Revoked

router = APIRouter(prefix="/v1/auth", tags=["auth"])
_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TokenRequest(BaseModel):
    """A new token for principal `name` (made if missing; grants are added to it)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s]+$")]
    queues: list[str] = Field(default_factory=list, max_length=1000)
    verbs: list[Verb] = Field(default_factory=list)
    admin: bool = False
    worker: bool = False
    worker_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$",
        description="bind the worker token to this worker name (implies worker)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TokenRequest:
        if self.worker_name is not None:
            self.worker = True
        if self.worker and (self.queues or self.verbs or self.admin):
            raise ValueError("a worker token has no queues, verbs or admin: drop them")
        if self.verbs and not self.queues:
            raise ValueError("verbs need at least one queue (use '*' for every queue)")
        for q in self.queues:
            if q != ALL_QUEUES and not _QUEUE.match(q):
                raise ValueError(f"queue {q!r} is not a queue name (or '*')")
        return self


def principal_json(who: Principal) -> dict[str, Any]:
    return {
        "id": who.id,
        "name": who.name,
        "kind": who.kind,
        "admin": who.admin,
        "grants": [{"queue": q, "verb": v} for q, v in sorted(who.grants)],
        **({"worker_name": who.worker_name} if who.worker_name else {}),
    }


@router.post(
    "/tokens",
    status_code=201,
    summary="Create a token (shown once)",
    response_model=IssuedToken,
    responses=problems(409),
)
async def create_token(body: TokenRequest, request: Request, svc: Svc, _: AdminCaller) -> Response:
    """The answer holds the token's secret; it is stored hashed and never shown again."""
    kind = Kind.WORKER if body.worker else Kind.USER
    issued = await run_in_threadpool(
        lambda: svc.store.issue_token(
            body.name,
            kind=kind.value,
            admin=body.admin,
            grants_=expand_grants(body.queues, body.verbs),
            worker_name=body.worker_name,
        )
    )
    _tokens(request).clear()  # the principal's other tokens may have gained grants
    answer = {"id": issued.id, "token": issued.token, "principal": principal_json(issued.principal)}
    return json_response(answer, 201)


@router.get(
    "/principals", summary="Principals, their grants and token ids", response_model=PrincipalList
)
async def list_principals(svc: Svc, _: AdminCaller) -> Response:
    return json_response({"items": await run_in_threadpool(svc.store.list_principals)})


@router.delete(
    "/tokens/{token_id}",
    summary="Revoke a token",
    response_model=Revoked,
    responses=problems(409, 422),
)
async def revoke_token(token_id: str, request: Request, svc: Svc, _: AdminCaller) -> Response:
    if not token_id.isalnum():
        raise InvalidInput("not a token id", [{"loc": ["path", "token_id"], "msg": token_id}])
    revoked = await run_in_threadpool(svc.store.revoke_token, token_id)
    _tokens(request).clear()
    return json_response({"revoked": revoked})


def _tokens(request: Request) -> TokenCache:
    cache: TokenCache = request.app.state.tokens
    return cache


@router.get(
    "/whoami",
    summary="The principal of this token",
    response_model=PrincipalInfo,
    openapi_extra={ANY_TOKEN: True},
)
async def whoami(who: Annotated[Principal, Depends(authenticate)]) -> Response:
    """Any valid token, a worker's included."""
    return json_response(principal_json(who))
