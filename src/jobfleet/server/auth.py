"""Bearer tokens. Tokens are stored hashed; lookups are cached briefly per process.

`Caller` (any principal but a worker) is what job routes take; the rest of the permission seam
(verbs per queue, admin, workers) is in `server/permissions.py`. A revoked token stops working
at once on the server that revoked it and within CACHE_SECONDS on other replicas.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from jobfleet.errors import Forbidden, NotFound, Unauthorized
from jobfleet.store import Principal, Store

CACHE_SECONDS = 5.0
SESSION_COOKIE = "jobfleet_ui"
"""The dashboard's session cookie (HttpOnly, SameSite=Strict): it holds the signed-in token."""
BEARER = "bearerAuth"

# The schemes, declared so that the OpenAPI document names them on every route that checks a
# token (FastAPI derives `security` from these dependencies); the checks below read the
# header and the cookie themselves, to say exactly what is wrong.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER,
    description="A token of `jobfleet auth create-token` (`jobfleet up` prints the admin's)",
)
_session = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="sessionCookie",
    description="The dashboard's sign-in cookie (HttpOnly, SameSite=Strict): lets a browser's "
    "EventSource on the same origin follow the event stream",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
Session = Annotated[str | None, Security(_session)]


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


async def authenticate(request: Request, _bearer: Bearer = None) -> Principal:
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


async def require_principal(request: Request, _bearer: Bearer = None) -> Principal:
    """A user or admin principal: a worker token gets 403 on every route but the workers'."""
    who = await authenticate(request)
    if who.is_worker:
        raise Forbidden(
            f"principal {who.name!r} holds a worker token: it may only be used by "
            "`jobfleet worker` (routes under /v1/workers)"
        )
    return who


async def stream_principal(request: Request, _: Bearer = None, __: Session = None) -> Principal:
    """A GET stream's caller: the bearer token, else the dashboard's session cookie.

    So a browser's `EventSource` on the same origin can follow the stream (it cannot send a
    header, and no token goes in a URL). Safe from other sites: the cookie is SameSite=Strict,
    so a page of another site cannot make the browser send it, and a stream changes nothing.
    """
    token = request.cookies.get(SESSION_COOKIE, "")
    if "authorization" in request.headers or not token:
        return await require_principal(request)
    cache: TokenCache = request.app.state.tokens
    who = await cache.principal(token)
    if who.is_worker:
        raise Forbidden(f"principal {who.name!r} holds a worker token: it cannot follow streams")
    return who


Caller = Annotated[Principal, Depends(require_principal)]
StreamCaller = Annotated[Principal, Depends(stream_principal)]
