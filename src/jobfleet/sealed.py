"""Sealed (air-gapped) deployments: what ingress refuses (PRODUCT.md §10). Pure.

With `sealed: true` no job may name a remote payload (http, https, s3: fetching it would call
out) and a `callback_url` must stay inside: a loopback address, or a prefix an operator listed
in `callbacks.allow` (the deployment's own receivers). The worker side of sealed mode — every
job in a network namespace with loopback only — is in worker/isolation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from jobfleet.models import JobSpec

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def sealed_errors(specs: list[JobSpec], *, batch: bool, allow: list[str]) -> list[dict[str, Any]]:
    """One {"loc", "msg"} per refused field, located like pydantic's errors."""
    errors: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        where: tuple[Any, ...] = ("jobs", i) if batch else ()
        if spec.payload_uri and urlparse(spec.payload_uri).scheme != "file":
            errors.append(
                {
                    "loc": [*where, "payload_uri"],
                    "msg": "this deployment is sealed: only file:// payloads are allowed",
                }
            )
        if spec.callback_url and not _inside(spec.callback_url, allow):
            errors.append(
                {
                    "loc": [*where, "callback_url"],
                    "msg": "this deployment is sealed: a callback must go to a loopback "
                    "address or a prefix listed in callbacks.allow",
                }
            )
    return errors


def _inside(url: str, allow: list[str]) -> bool:
    host = urlparse(url).hostname or ""
    return host in LOOPBACK or any(url.startswith(prefix) for prefix in allow)
