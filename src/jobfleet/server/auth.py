"""Bearer tokens. Tokens are stored hashed; lookups are cached briefly per process.

`Caller` (any principal but a worker) is what job routes take; the rest of the permission seam
(verbs per queue, admin, workers) is in `server/permissions.py`. A revoked token stops working
at once on the server that revoked it and within CACHE_SECONDS on other replicas.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from jobfleet.errors import Forbidden, NotFound, Unauthorized
from jobfleet.store import Principal, Store

CACHE_SECONDS = 5.0


class TokenCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def principal(self, token: str) -> Principal:
        hit = self._cache.get(token)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        try:
            who = await run_in_threadpool(self.store.authenticate, token)
        except NotFound:
            raise Unauthorized(
                "the token is not valid: get one with `jobfleet auth token`"
            ) from None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (time.monotonic() + CACHE_SECONDS, who)
        return who

    def clear(self) -> None:
        """Forget every cached lookup (after a revocation)."""
        self._cache.clear()


async def authenticate(request: Request) -> Principal:
    """The principal of the request's bearer token, of any kind (401 without a valid one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(the token of `jobfleet up` is printed by `jobfleet auth token`)"
        )
    cache: TokenCache = request.app.state.tokens
    return await cache.principal(token.strip())


async def require_principal(request: Request) -> Principal:
    """A user or admin principal: a worker token gets 403 on every route but the workers'."""
    who = await authenticate(request)
    if who.is_worker:
        raise Forbidden(
            f"principal {who.name!r} holds a worker token: it may only be used by "
            "`jobfleet worker` (routes under /v1/workers)"
        )
    return who


Caller = Annotated[Principal, Depends(require_principal)]
