"""Bearer tokens. Tokens are stored hashed; lookups are cached briefly per process."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from jobfleet.errors import NotFound, Unauthorized
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


async def require_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(the token of `jobfleet up` is printed by `jobfleet auth token`)"
        )
    cache: TokenCache = request.app.state.tokens
    return await cache.principal(token.strip())


Caller = Annotated[Principal, Depends(require_principal)]
