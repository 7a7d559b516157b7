"""The job spec as users submit it (PRODUCT.md §2), validated at ingress.

Unknown fields are refused; every error names its field. Resources are normalised
(cpu in milli-cores, memory in bytes) so the scheduler compares integers.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from jobfleet.failures.policy import RetryPolicy
from jobfleet.inputs import Bounded
from jobfleet.units import parse_duration, parse_memory

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
LABEL_KEY_RE = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_CPU = 1024.0
MAX_MEMORY = 64 * 2**40  # 64 TiB
MAX_GPU = 64
MAX_PRIORITY = 10**9
MAX_BATCH = 10_000
MAX_TIMEOUT = 365 * 86400.0
MAX_ARRAY = 10_000

Name = Annotated[str, Field(pattern=NAME_RE)]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(default=1.0, gt=0, le=MAX_CPU, description="cores; fractions allowed")
    memory: int = Field(default=256 * 2**20, description="bytes, or a quantity like '512Mi'")
    gpu: int = Field(default=0, ge=0, le=MAX_GPU)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: object) -> int:
        if not isinstance(v, str | int | float):
            raise ValueError("memory is a number of bytes or a quantity like '512Mi'")
        n = parse_memory(v)
        if n <= 0:
            raise ValueError("memory must be more than 0")
        if n > MAX_MEMORY:
            raise ValueError("memory above 64Ti is not a real request")
        return n

    @property
    def cpu_milli(self) -> int:
        return max(1, round(self.cpu * 1000))


class Dependency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=64)
    after: Literal["success", "any", "failure"] = "success"


class Gang(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    size: int = Field(ge=1, le=10_000)


class ArraySpec(BaseModel):
    """`array: {size, max_parallel}`: one submission of `size` jobs (PRODUCT.md §14.1)."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=MAX_ARRAY)
    max_parallel: int | None = Field(default=None, ge=1, le=MAX_ARRAY)


def parse_not_before(v: object) -> float:
    """An RFC 3339 time, or a duration from now ("10m"), as seconds since the epoch."""
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise ValueError("not_before is an RFC 3339 time or a duration like '10m'")
    if isinstance(v, str) and ("T" in v or "-" in v[1:]):
        try:
            when = datetime.fromisoformat(v.strip())
        except ValueError as exc:
            raise ValueError(f"{v!r} is not an RFC 3339 time (2026-12-05T08:00:00Z)") from exc
        if when.tzinfo is None:
            raise ValueError(f"{v!r} has no time zone: add Z or an offset like +01:00")
        return when.timestamp()
    return time.time() + min(parse_duration(v), MAX_TIMEOUT)


class JobSpec(Bounded):
    """One job as submitted. Only `command` is required. No NUL, lone surrogate, NaN or
    integer past int64 anywhere in it (`jobfleet.inputs`)."""

    model_config = ConfigDict(extra="forbid")

    shell: bool = False
    command: list[str] | str
    env: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = Field(default=None, max_length=4096)
    resources: Resources = Field(default_factory=Resources)
    queue: Name = "default"
    job_set: str = Field(default="default", min_length=1, max_length=128)
    priority: int = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    priority_class: Name | None = None
    timeout: float | None = Field(default=None, description="seconds, or '30m'")
    retry: RetryPolicy | None = None
    depends_on: list[Dependency] = Field(default_factory=list, max_length=1000)
    gang: Gang | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    network: Literal["default", "none"] = "default"
    payload_uri: str | None = Field(default=None, max_length=4096)
    callback_url: str | None = Field(default=None, max_length=4096)
    callback_events: Literal["terminal", "all"] | None = Field(
        default=None, description="which events callback_url receives (default: terminal)"
    )
    ttl_after_finished: float | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict)
    outputs: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="files (relative paths or globs) to list on the run after success",
    )
    array: ArraySpec | None = Field(default=None, description="submit `size` jobs at once")
    not_before: float | None = Field(
        default=None, description="RFC 3339 time, or a duration like '10m' from now"
    )

    @field_validator("not_before", mode="before")
    @classmethod
    def _not_before(cls, v: object) -> float | None:
        return None if v is None else parse_not_before(v)

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v: list[str]) -> list[str]:
        for pattern in v:
            parts = pattern.replace("\\", "/").split("/")
            if not pattern or pattern.startswith("/") or ".." in parts or len(pattern) > 1024:
                raise ValueError(
                    f"{pattern!r}: an output is a path or glob relative to the working dir"
                )
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | str, info: ValidationInfo) -> list[str] | str:
        if isinstance(v, str):
            if not info.data.get("shell"):
                raise ValueError("command is a string: pass an argv list, or set shell: true")
            if not v.strip():
                raise ValueError("command is empty")
            return v
        if not v or not v[0]:
            raise ValueError("command needs at least a program name")
        if len(v) > 10_000 or sum(len(a) for a in v) > 1_000_000:
            raise ValueError("command is too long")
        if any("\x00" in a for a in v):
            raise ValueError("command arguments cannot contain NUL bytes")
        return v

    @field_validator("depends_on", mode="before")
    @classmethod
    def _deps(cls, v: object) -> object:
        if isinstance(v, list):
            return [{"job_id": d} if isinstance(d, str) else d for d in v]
        return v

    @field_validator("callback_events")
    @classmethod
    def _callback_events(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and "callback_url" in info.data and info.data["callback_url"] is None:
            raise ValueError("callback_events needs a callback_url")
        return v

    @field_validator("timeout", "ttl_after_finished", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float | None:
        if v is None:
            return None
        if not isinstance(v, str | int | float):
            raise ValueError("a duration is a number of seconds or a string like '30m'")
        seconds = parse_duration(v)
        if seconds <= 0 or seconds > MAX_TIMEOUT:
            raise ValueError("a duration must be more than 0 and at most 365d")
        return seconds

    @field_validator("labels", "selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 64:
            raise ValueError("at most 64 labels")
        for key, value in v.items():
            if not LABEL_KEY_RE.match(key):
                raise ValueError(f"label key {key!r} is not a valid name")
            if len(value) > 256:
                raise ValueError(f"label {key!r}: value longer than 256 characters")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return v

    @field_validator("payload_uri", "callback_url")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = urlparse(v).scheme
        allowed = ("file", "http", "https", "s3")
        if scheme not in allowed:
            raise ValueError(f"scheme {scheme or '(none)'!r} is not one of {', '.join(allowed)}")
        return v

    def argv(self) -> list[str]:
        if self.shell:
            text = self.command if isinstance(self.command, str) else " ".join(self.command)
            return ["/bin/sh", "-c", text]
        assert isinstance(self.command, list)
        return list(self.command)

    def stored(self) -> dict[str, Any]:
        """The spec as stored and served: defaults filled in, durations in seconds."""
        return self.model_dump(mode="json", exclude_none=True)
