"""The checks a submitted `callback_url` must pass, beyond its syntax (models.py).

- `callbacks.allow` (URL prefixes): when set, the URL must start with one of them.
- A signing secret must exist: the queue's `callback_secret` or `callbacks.secret`. jobfleet
  never sends an unsigned callback, so without one the job is refused rather than accepted
  with a callback that could not be verified.
- `sealed: true`: only loopback receivers (nothing in jobfleet calls out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from jobfleet.config import Settings
from jobfleet.errors import InvalidInput
from jobfleet.models import JobSpec

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def url_problem(url: str, settings: Settings, queue_secret: str | None) -> str | None:
    """Why `url` is refused, or None."""
    allow = settings.callbacks.allow
    if urlparse(url).scheme not in ("http", "https"):
        return "a callback_url is an http:// or https:// URL"
    allowed = any(url.startswith(prefix) for prefix in allow)
    loopback = urlparse(url).hostname in LOOPBACK
    if settings.sealed and not (loopback or allowed):  # allow: the operator's own hooks
        return "this deployment is sealed: external callbacks are refused"
    if allow and not allowed and not (settings.sealed and loopback):
        return f"not allowed: it must start with one of {', '.join(allow)} (callbacks.allow)"
    if not (queue_secret or settings.callbacks.secret):
        return (
            "callbacks are not configured: set callbacks.secret (or the queue's "
            "callback_secret) so deliveries can be signed"
        )
    return None


def check_callbacks(
    specs: list[JobSpec],
    settings: Settings,
    queue_secret: Callable[[str], str | None],
    *,
    batch: bool,
) -> None:
    """Refuse (422, naming `callback_url`) every spec whose callback_url may not be used."""
    errors: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        if spec.callback_url is None:
            continue
        secret = None if settings.callbacks.secret else queue_secret(spec.queue)
        why = url_problem(spec.callback_url, settings, secret)
        if why:
            loc: list[Any] = ["jobs", i, "callback_url"] if batch else ["callback_url"]
            errors.append({"loc": loc, "msg": why})
    if errors:
        first = ".".join(str(p) for p in errors[0]["loc"])
        raise InvalidInput(f"{first}: {errors[0]['msg']}", errors[:200])
