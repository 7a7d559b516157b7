"""Ingress checks of scheduling fields that a single spec cannot make alone: pure.

A `priority_class` must be configured; the members of a gang in one submission must agree on
its size, queue and priority class, and be no more than its size. (Members already stored are
checked by the store in the submission's transaction.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from jobfleet.models import JobSpec

Error = dict[str, Any]


def admission_errors(
    specs: Sequence[JobSpec], classes: Collection[str], *, batch: bool = True
) -> list[Error]:
    """Every error as `{"loc", "msg"}`, located like the request (`["jobs", i, ...]`)."""
    errors: list[Error] = []
    first: dict[str, tuple[int, JobSpec]] = {}
    count: dict[str, int] = {}
    for i, spec in enumerate(specs):
        loc: list[Any] = ["jobs", i] if batch else []
        if spec.priority_class is not None and spec.priority_class not in classes:
            known = ", ".join(sorted(classes)) or "none"
            errors.append(
                {
                    "loc": [*loc, "priority_class"],
                    "msg": f"unknown priority class {spec.priority_class!r} (configured: {known})",
                }
            )
        if spec.gang is None:
            continue
        gid = spec.gang.id
        count[gid] = count.get(gid, 0) + 1
        if gid not in first:
            first[gid] = (i, spec)
            continue
        errors += gang_disagreement(spec, first[gid][1], loc, f"member {first[gid][0]}")
        if count[gid] == spec.gang.size + 1:
            errors.append(
                {
                    "loc": [*loc, "gang", "size"],
                    "msg": f"gang {gid!r} has more than its size {spec.gang.size} members",
                }
            )
    return errors


def gang_disagreement(spec: JobSpec, other: JobSpec, loc: list[Any], who: str) -> list[Error]:
    """Errors for each field in which `spec` disagrees with another member of its gang."""
    assert spec.gang is not None and other.gang is not None
    out: list[Error] = []
    for field, mine, theirs in (
        (["gang", "size"], spec.gang.size, other.gang.size),
        (["queue"], spec.queue, other.queue),
        (["priority_class"], spec.priority_class, other.priority_class),
    ):
        if mine != theirs:
            out.append(
                {
                    "loc": [*loc, *field],
                    "msg": f"gang {spec.gang.id!r}: {field[-1]} {mine!r} differs from "
                    f"{theirs!r} of {who}; all members of a gang must agree",
                }
            )
    return out
