"""The deployment's configuration (PRODUCT.md §13): one YAML file, validated in one place.

Unknown keys and invalid values refuse the start with a message naming the path in the file,
e.g. `queues[1].weight: Input should be greater than 0`. Later features add keys here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jobfleet.errors import ConfigError
from jobfleet.failures import Condition, RetryPolicy
from jobfleet.models import NAME_RE
from jobfleet.units import parse_duration, parse_memory


def _duration(v: object) -> float:
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s'")
    return parse_duration(v)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriorityClass(_Strict):
    name: str = Field(pattern=NAME_RE)
    priority: int = 0
    preemptible: bool = True


class MaxResources(_Strict):
    """A queue's ceiling on what its running jobs hold together (None: no ceiling)."""

    cpu: float | None = Field(default=None, ge=0, description="cores")
    memory: int | None = Field(default=None, ge=0, description="bytes, or a quantity like '64Gi'")
    gpu: int | None = Field(default=None, ge=0)

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
    max_running_jobs: int | None = Field(default=None, ge=0)
    max_resources: MaxResources | None = None
    retry: RetryPolicy | None = None


class ExitCodes(_Strict):
    operator: str = Field(pattern="^(In|NotIn)$")
    values: list[int] = Field(min_length=1)


class CategoryRule(_Strict):
    conditions: list[Condition] = Field(default_factory=list)
    exit_codes: ExitCodes | None = None
    termination_message: str | None = None

    @field_validator("termination_message")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"bad regex: {exc}") from exc
        return v


class ErrorCategory(_Strict):
    name: str = Field(pattern=NAME_RE)
    rules: list[CategoryRule] = Field(min_length=1)


class Callbacks(_Strict):
    secret: str | None = None
    allow: list[str] = Field(default_factory=list)


class WorkerConfig(_Strict):
    name: str | None = None
    shard: str = Field(default="default", pattern=NAME_RE)
    cpu: float | None = Field(default=None, gt=0)
    memory: int | None = None
    gpu: int | None = Field(default=None, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    grace: float = 10.0

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

    @field_validator("lease_timeout", "sse_heartbeat", mode="before")
    @classmethod
    def _durations(cls, v: object) -> float:
        seconds = _duration(v)
        if seconds <= 0:
            raise ValueError("must be more than 0")
        return seconds

    @field_validator("ttl_after_finished", mode="before")
    @classmethod
    def _ttl(cls, v: object) -> float | None:
        return None if v is None else _duration(v)

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
        seen: set[str] = set()
        for i, cat in enumerate(v):
            if cat.name in seen:
                raise ValueError(f"[{i}].name: duplicate category name {cat.name!r}")
            seen.add(cat.name)
        return v


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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
        lines = [f"{format_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise ConfigError(f"{where}invalid configuration:\n  " + "\n  ".join(lines)) from exc
