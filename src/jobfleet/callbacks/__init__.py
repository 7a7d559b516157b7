"""Job callbacks (PRODUCT.md §9): signed, at-least-once delivery of a job's events to its
`callback_url`, from the durable outbox the store writes with each event.

- `signing`: the HMAC-SHA256 signature (pure; receivers can import `verify`).
- `schedule`: what an attempt's outcome means — delivered, retry when, or give up (pure).
- `ingress`: the checks a submitted `callback_url` must pass (allow-list, secret, sealed).
- `deliverer`: the thread that claims due outbox rows and POSTs them (httpx).
"""

from __future__ import annotations

from jobfleet.callbacks.signing import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)

__all__ = ["EVENT_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify"]
