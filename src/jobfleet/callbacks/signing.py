"""The callback signature: `X-Jobfleet-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw
request body under the queue's (or the deployment's) callback secret — the GitHub webhook
scheme, so receivers can reuse what they know. The body is the event JSON, which carries the
event `id` (also sent as `X-Jobfleet-Event-Id`) and its `time`."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Jobfleet-Signature"
EVENT_HEADER = "X-Jobfleet-Event-Id"
TIMESTAMP_HEADER = "X-Jobfleet-Timestamp"
ATTEMPT_HEADER = "X-Jobfleet-Delivery-Attempt"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True if `header` is the signature of `body` under `secret` (constant-time compare)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)
