"""One root exception and a short hierarchy. The API maps each class to one HTTP status."""

from __future__ import annotations

from typing import Any


class JobfleetError(Exception):
    """Root of every error jobfleet raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class InvalidInput(JobfleetError):
    """Bad input; `errors` is a list of {"loc": [...], "msg": "..."}."""

    status = 422
    title = "Invalid request"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class ConfigError(JobfleetError):
    """A configuration file or flag is invalid; the message names the path in the file."""

    title = "Invalid configuration"


class NotFound(JobfleetError):
    status = 404
    title = "Not found"


class Unauthorized(JobfleetError):
    status = 401
    title = "Unauthorized"


class Forbidden(JobfleetError):
    status = 403
    title = "Forbidden"


class Conflict(JobfleetError):
    status = 409
    title = "Conflict"


class IllegalTransition(Conflict):
    """The lifecycle refused a transition. Carries the current state and the allowed actions."""

    title = "Illegal transition"

    def __init__(self, detail: str, *, state: str | None, actions: list[str]) -> None:
        super().__init__(detail, state=state, actions=actions)
        self.state = state
        self.actions = actions


class StaleState(Conflict):
    """Another writer moved the job first (the guarded UPDATE matched no row)."""

    title = "Job changed concurrently"


class ServiceUnavailable(JobfleetError):
    status = 503
    title = "Service unavailable"


class NotLeader(ServiceUnavailable):
    """This scheduler is no longer the leader: another one took over; it must stop acting."""

    title = "Not the leader"


_NAME_PATTERN = "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'"
_PHRASES = (
    ("Value error, ", ""),
    ("Assertion failed, ", ""),
    ("Field required", "is required"),
    ("Extra inputs are not permitted", "unknown field"),
    ("Input should be ", "must be "),
    ("String should ", "must "),
    ("List should ", "must "),
    ("Dictionary should ", "must "),
    ("Value should ", "must "),
)


def plain_message(msg: str) -> str:
    """A validation message as a sentence for people: pydantic's "Input should be greater than
    0" → "must be greater than 0", "Value error, malformed memory quantity" → "malformed memory
    quantity"; a message of our own is kept as it is."""
    if msg.startswith(_NAME_PATTERN):
        return (
            "must be a name: letters, digits, '.', '_' and '-', starting with a letter or a "
            "digit, at most 63 characters"
        )
    for prefix, plain in _PHRASES:
        if msg.startswith(prefix):
            return plain + msg[len(prefix) :]
    return msg
