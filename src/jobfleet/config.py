"""The deployment's configuration (PRODUCT.md §13): one YAML file, validated in one place.

Unknown keys and invalid values refuse the start with a message naming the path in the file,
e.g. `queues[1].weight: Input should be greater than 0`. Later features add keys here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jobfleet.errors import ConfigError, plain_message
from jobfleet.failures import RetryPolicy
from jobfleet.failures.classifier import Classifier, ErrorCategory, duplicate_names
from jobfleet.failures.policy import Backoff
from jobfleet.models import NAME_RE
from jobfleet.units import parse_duration, parse_memory


def _duration(v: object) -> float:
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s'")
    return parse_duration(v)


def _positive(v: object) -> float:
    seconds = _duration(v)
    if seconds <= 0:
        raise ValueError("must be more than 0")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriorityClass(_Strict):
    name: str = Field(pattern=NAME_RE)
    priority: int = 0
    preemptible: bool = True


FLEET_MAX = 10**9  # a ceiling no fleet reaches, so limits stay finite integers when scaled


class MaxResources(_Strict):
    """A queue's ceiling on what its running jobs hold together (None: no ceiling)."""

    cpu: float | None = Field(default=None, ge=0, le=FLEET_MAX, description="cores")
    memory: int | None = Field(
        default=None, ge=0, le=2**62, description="bytes, or a quantity like '64Gi'"
    )
    gpu: int | None = Field(default=None, ge=0, le=FLEET_MAX)

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: object) -> int | None:
        if v is None:
            return None
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError("memory is bytes or a quantity like '64Gi'")
        return parse_memory(v)


class QueueConfig(_Strict):
    name: str = Field(pattern=NAME_RE)
    weight: float = Field(default=1.0, gt=0, le=1000)
    max_running_jobs: int | None = Field(default=None, ge=0, le=FLEET_MAX)
    max_resources: MaxResources | None = None
    retry: RetryPolicy | None = None
    callback_secret: str | None = Field(default=None, min_length=1)
    ttl_after_finished: float | None = None

    @field_validator("ttl_after_finished", mode="before")
    @classmethod
    def _ttl(cls, v: object) -> float | None:
        return None if v is None else _positive(v)


class Callbacks(_Strict):
    """Job callbacks (PRODUCT.md §9): signing secret, allowed URL prefixes, delivery."""

    secret: str | None = Field(default=None, min_length=1)
    allow: list[str] = Field(default_factory=list)
    timeout: float = 10.0
    max_attempts: int = Field(default=20, ge=1, le=1000)
    backoff: Backoff = Field(default_factory=lambda: Backoff(initial=1.0, max=600.0, jitter=0.1))
    concurrency: int = Field(default=8, ge=1, le=256)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: object) -> float:
        return _positive(v)


class MetricsConfig(_Strict):
    auth: bool = False  # True: /metrics needs a valid bearer token


class RetentionConfig(_Strict):
    interval: float = 5.0  # seconds between passes of the retention thread
    batch: int = Field(default=500, ge=1, le=10_000)  # jobs deleted per transaction

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v: object) -> float:
        return _positive(v)


class WorkerConfig(_Strict):
    name: str | None = None
    shard: str = Field(default="default", pattern=NAME_RE)
    cpu: float | None = Field(default=None, gt=0)
    memory: int | None = None
    gpu: int | None = Field(default=None, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    grace: float = 10.0
    isolation: Literal["auto", "cgroup2", "cgroup1", "rlimits", "none"] = "auto"
    namespaces: bool = True
    pids_limit: int | None = Field(default=4096, ge=8, le=4_194_304)
    gpu_devices: list[str] | None = None
    log_limit: int = 64 * 2**20
    # A root worker runs jobs as this user (a name or a uid); `root` must be said explicitly.
    # A worker that is not root runs them as itself (worker/runas.py).
    run_as: str = Field(default="nobody", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("log_limit", mode="before")
    @classmethod
    def _log_limit(cls, v: object) -> int:
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError("log_limit is bytes or a quantity like '64Mi'")
        n = parse_memory(v)
        if n < 4096:
            raise ValueError("log_limit must be at least 4096 bytes")
        return n

    # SIGTERM on `jobfleet worker`: running jobs get this long to finish, then are evicted.
    drain_timeout: float = Field(default=300.0, ge=0)
    # `jobfleet worker`: how often it asks the server for new leases and orders.
    poll_interval: float = Field(default=0.5, gt=0, le=60)

    @field_validator("drain_timeout", "poll_interval", mode="before")
    @classmethod
    def _fleet_durations(cls, v: object) -> float:
        return _duration(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: object) -> int | None:
        if v is None:
            return None
        if not isinstance(v, str | int | float):
            raise ValueError("memory is bytes or a quantity like '8Gi'")
        return parse_memory(v)

    @field_validator("grace", mode="before")
    @classmethod
    def _grace(cls, v: object) -> float:
        return _duration(v)


class ShardConfig(_Strict):
    """A shard's labels (a job's `selector` may require them); created at start."""

    name: str = Field(pattern=NAME_RE)
    labels: dict[str, str] = Field(default_factory=dict)


class Settings(_Strict):
    database: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8360, ge=0, le=65535)
    lease_timeout: float = 30.0
    sse_heartbeat: float = 15.0
    max_request_bytes: int = 64 * 2**20
    priority_classes: list[PriorityClass] = Field(
        default_factory=lambda: [PriorityClass(name="default")]
    )
    queues: list[QueueConfig] = Field(default_factory=list)
    error_categories: list[ErrorCategory] = Field(default_factory=list)
    retry: RetryPolicy | None = None
    callbacks: Callbacks = Field(default_factory=Callbacks)
    sealed: bool = False
    ttl_after_finished: float | None = None
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    log_format: Literal["text", "json"] = "text"
    shards: list[ShardConfig] = Field(default_factory=list)
    reroute_after: float = 60.0  # a shard that cannot place a job this long gives it back
    # Logs shipped by remote workers: at most this many bytes kept per run (both streams, with
    # their timestamps); the rest is dropped with a note. Bytes or a quantity like '256Mi'.
    stored_log_limit: int = 256 * 2**20

    @field_validator("stored_log_limit", mode="before")
    @classmethod
    def _stored_log_limit(cls, v: object) -> int:
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError("stored_log_limit is bytes or a quantity like '256Mi'")
        n = parse_memory(v)
        if n < 4096:
            raise ValueError("stored_log_limit must be at least 4096 bytes")
        return n

    @field_validator("lease_timeout", "sse_heartbeat", "reroute_after", mode="before")
    @classmethod
    def _durations(cls, v: object) -> float:
        seconds = _duration(v)
        if seconds <= 0:
            raise ValueError("must be more than 0")
        return seconds

    @field_validator("ttl_after_finished", mode="before")
    @classmethod
    def _ttl(cls, v: object) -> float | None:
        return None if v is None else _positive(v)

    @field_validator("priority_classes", "queues")
    @classmethod
    def _unique_names(cls, v: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for i, item in enumerate(v):
            if item.name in seen:
                raise ValueError(f"[{i}].name: duplicate name {item.name!r}")
            seen.add(item.name)
        return v

    @field_validator("error_categories")
    @classmethod
    def _unique(cls, v: list[ErrorCategory]) -> list[ErrorCategory]:
        dups = duplicate_names(v)
        if dups:
            i, name = dups[0]
            raise ValueError(f"[{i}].name: duplicate category name {name!r}")
        return v

    @model_validator(mode="after")
    def _known_categories(self) -> Settings:
        """A retry rule's `on_categories` must name configured categories (a typo never
        matches, silently)."""
        known = {c.name for c in self.error_categories}
        policies = [("retry", self.retry)] + [
            (f"queues[{i}].retry", q.retry) for i, q in enumerate(self.queues)
        ]
        for where, policy in policies:
            for j, rule in enumerate(policy.rules if policy else []):
                for name in rule.on_categories:
                    if name not in known:
                        raise ValueError(
                            f"{where}.rules[{j}].on_categories: unknown error category "
                            f"{name!r} (configured: {', '.join(sorted(known)) or 'none'})"
                        )
        return self

    def classifier(self) -> Classifier:
        """The error-category classifier these settings configure."""
        return Classifier(self.error_categories)


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_line(loc: tuple[int | str, ...], msg: str) -> str:
    """`path: message`. A validator's message may continue the path (`[1].name: ...`) or,
    from a whole-model check, carry all of it (`retry.rules[0].on_categories: ...`)."""
    msg = plain_message(msg)
    where = format_loc(loc)
    if msg.startswith("[") or (not where and re.match(r"^[a-z_]+[.\[]", msg)):
        return where + msg
    return f"{where}: {msg}" if where else msg


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read `path` (or $JOBFLEET_CONFIG), apply flag overrides that are not None, validate."""
    path = path or os.environ.get("JOBFLEET_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys")
        data = raw or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        lines = [_error_line(e["loc"], e["msg"]) for e in exc.errors(include_url=False)]
        raise ConfigError(f"{where}invalid configuration:\n  " + "\n  ".join(lines)) from exc
