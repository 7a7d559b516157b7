"""Signing in to the dashboard: a token typed once into a form, kept in an HttpOnly cookie.

The API keeps its bearer tokens; the dashboard's own routes (under /ui) read the cookie, and so
does the event stream `GET /v1/events` (server/auth.py `stream_principal`), so that a page's
EventSource can follow it; no other API route does. The cookie is HttpOnly (no script can read
it) and SameSite=Strict (no other site's page can make the browser send it); it is Secure
when the request came over HTTPS. Every state-changing dashboard request is a POST that must
also carry the same origin (checked from Origin, or Referer when Origin is absent). No token
ever travels in a URL.

The cookie's token is turned into the same `Principal` as a bearer token (admin, or a user
with verbs per queue; `web/access.py` applies them). Worker tokens cannot sign in: they are
for `jobfleet worker` only, exactly as on the API.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from jobfleet.errors import JobfleetError, Unauthorized
from jobfleet.server.auth import SESSION_COOKIE, TokenCache
from jobfleet.store import Principal

COOKIE = SESSION_COOKIE
COOKIE_PATH = "/"  # the dashboard under /ui, and /v1/events for an EventSource
OLD_COOKIE_PATH = "/ui"  # where sign-ins before 0.2 kept it: signing out clears it too
MAX_AGE = 7 * 24 * 3600


class SignInNeeded(JobfleetError):
    """The dashboard request has no valid cookie: pages redirect to the sign-in form."""

    status = 401
    title = "Sign in needed"


class CrossSite(JobfleetError):
    """A state-changing request whose origin is not this server's."""

    status = 403
    title = "Refused"


WORKER_TOKEN = (
    "That is a worker token (only for `jobfleet worker`): sign in with a user or admin token."
)


async def token_principal(request: Request, token: str) -> Principal:
    """The principal of a dashboard token; Unauthorized if it is invalid or a worker's."""
    cache: TokenCache = request.app.state.tokens
    who = await cache.principal(token)
    if who.is_worker:
        raise Unauthorized(WORKER_TOKEN)
    return who


async def ui_principal(request: Request) -> Principal:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise SignInNeeded("sign in with a token")
    try:
        return await token_principal(request, token)
    except Unauthorized:
        raise SignInNeeded("the saved token is no longer valid: sign in again") from None


def same_origin(request: Request) -> None:
    """Refuse a POST that another site's page made (defence in depth beside SameSite)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return  # not a browser form post from another page: non-browser clients send neither
    parts = urlsplit(source)
    if parts.netloc != request.headers.get("host", ""):
        raise CrossSite(f"refused a request from {parts.scheme}://{parts.netloc}")


async def ui_writer(request: Request) -> Principal:
    same_origin(request)
    return await ui_principal(request)


UiCaller = Annotated[Principal, Depends(ui_principal)]
UiWriter = Annotated[Principal, Depends(ui_writer)]


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
