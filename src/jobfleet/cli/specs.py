"""Job specs from `jobfleet submit` flags and from `-f jobs.yaml` (pure functions, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from jobfleet.client.sync import format_loc
from jobfleet.errors import InvalidInput, plain_message

BATCH_SIZE = 1000
MAX_LISTED_ERRORS = 20


def parse_pairs(values: Iterable[str], what: str = "value") -> dict[str, str]:
    """["k=v", "a=b=c"] → {"k": "v", "a": "b=c"}; raises ValueError naming a malformed item."""
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} is not of the form KEY=VALUE")
        pairs[key] = value
    return pairs


def build_spec(
    command: Sequence[str] | None = None,
    *,
    shell: bool = False,
    queue: str | None = None,
    job_set: str | None = None,
    cpu: float | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    priority: int | None = None,
    priority_class: str | None = None,
    timeout: str | None = None,
    retries: int | None = None,
    after: Sequence[str] = (),
    client_id: str | None = None,
    network: str | None = None,
    working_dir: str | None = None,
    labels: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    array: str | None = None,
    not_before: str | None = None,
) -> dict[str, Any]:
    """The spec the flags of `jobfleet submit` describe; fields not given are left out."""
    spec: dict[str, Any] = {}
    if command:
        spec["command"] = " ".join(command) if shell else [*command]
    if shell:
        spec["shell"] = True
    resources = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("gpu", gpu)) if v is not None}
    if resources:
        spec["resources"] = resources
    plain = {
        "queue": queue,
        "job_set": job_set,
        "priority": priority,
        "priority_class": priority_class,
        "timeout": timeout,
        "client_id": client_id,
        "network": network,
        "working_dir": working_dir,
    }
    spec.update({k: v for k, v in plain.items() if v is not None})
    if retries is not None:
        spec["retry"] = {"max_retries": retries}
    if after:
        spec["depends_on"] = [{"job_id": job_id, "after": "success"} for job_id in after]
    if labels:
        spec["labels"] = dict(labels)
    if env:
        spec["env"] = dict(env)
    if array is not None:
        spec["array"] = parse_array(array)
    if not_before is not None:
        spec["not_before"] = not_before
    return spec


def parse_array(text: str) -> dict[str, int]:
    """`N` or `N%M` (Slurm's --array size%max_parallel) as the spec's `array` field."""
    size, sep, most = text.partition("%")
    try:
        out = {"size": int(size)}
        if sep:
            out["max_parallel"] = int(most)
    except ValueError as exc:
        raise ValueError(f"--array {text!r}: give N or N%M (e.g. 100%10)") from exc
    return out


def merge_defaults(spec: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` with the fields it does not set taken from `defaults`.

    Mappings (resources, labels, env, retry) merge one level deep: the spec's keys win.
    """
    merged = dict(spec)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping) and isinstance(merged[key], Mapping):
            merged[key] = {**value, **merged[key]}
    return merged


def load_specs(text: str, source: str = "jobs file") -> list[dict[str, Any]]:
    """Specs in a YAML document: a list of specs, `{jobs: [spec, ...]}`, or one spec."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from exc
    if doc is None:
        doc = []
    elif isinstance(doc, dict) and "jobs" in doc:
        extra = sorted(str(k) for k in doc if k != "jobs")
        if extra:
            raise InvalidInput(f"{source}: unexpected top-level key(s) {', '.join(extra)}")
        doc = doc["jobs"]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise InvalidInput(f"{source}: expected a list of job specs or {{jobs: [spec, ...]}}")
    if not doc:
        raise InvalidInput(f"{source} holds no jobs")
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise InvalidInput(f"{source}: jobs[{i}] is not a mapping (a job spec)")
    return doc


def validate_specs(specs: Sequence[Mapping[str, Any]], source: str = "jobs file") -> None:
    """Check every spec before anything is sent, so a bad file submits nothing at all."""
    from jobfleet.models import JobSpec

    errors: list[dict[str, Any]] = []
    bad = 0
    for i, spec in enumerate(specs):
        try:
            JobSpec.model_validate(spec)
        except ValidationError as exc:
            bad += 1
            errors += [
                {"loc": ["jobs", i, *e["loc"]], "msg": plain_message(e["msg"])}
                for e in exc.errors()
            ]
    if not errors:
        return
    lines = [f"  {format_loc(e['loc'])}: {e['msg']}" for e in errors[:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(errors) - MAX_LISTED_ERRORS} more")
    head = f"{source}: {bad} of {len(specs)} jobs are invalid; nothing was submitted:"
    raise InvalidInput("\n".join([head, *lines]), errors=errors)


def batches(specs: Sequence[dict[str, Any]], size: int = BATCH_SIZE) -> list[list[dict[str, Any]]]:
    return [list(specs[i : i + size]) for i in range(0, len(specs), size)]
