"""The error-category classifier (PRODUCT.md §5): names for failures, from configuration. Pure.

A category has rules; a failure is in the category when ANY rule matches (OR), and a rule
matches when ALL its fields match (AND): `conditions` (the failure's condition is one of them),
`exit_codes` ({operator: In|NotIn, values}; a failure without an exit code never matches) and
`termination_message` (a regular expression searched in the termination message).

The configuration is validated completely before anything starts (the models below, used by
`config.Settings`), and a failure is classified once, where the server observes it; the
categories are stored with the failure and never recomputed, so a later change of the
configuration does not rewrite history.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jobfleet.failures.conditions import Condition, FailureInfo

CATEGORY_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExitCodes(_Strict):
    operator: Literal["In", "NotIn"]
    values: list[int] = Field(min_length=1)


class CategoryRule(_Strict):
    conditions: list[Condition] | None = None
    exit_codes: ExitCodes | None = None
    termination_message: str | None = None

    @field_validator("conditions")
    @classmethod
    def _some_conditions(cls, v: list[Condition] | None) -> list[Condition] | None:
        if v is not None and not v:
            raise ValueError("list at least one condition, or leave the field out")
        return v

    @field_validator("termination_message")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"bad regex {v!r}: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> CategoryRule:
        if self.conditions is None and self.exit_codes is None and self.termination_message is None:
            raise ValueError(
                "a rule needs at least one of conditions, exit_codes, termination_message"
            )
        return self


class ErrorCategory(_Strict):
    name: str = Field(pattern=CATEGORY_NAME_RE)
    rules: list[CategoryRule] = Field(min_length=1)


def duplicate_names(categories: Sequence[ErrorCategory]) -> list[tuple[int, str]]:
    """(index, name) of each category whose name an earlier one already took."""
    seen: set[str] = set()
    out: list[tuple[int, str]] = []
    for i, cat in enumerate(categories):
        if cat.name in seen:
            out.append((i, cat.name))
        seen.add(cat.name)
    return out


@dataclass(frozen=True, slots=True)
class _Rule:
    conditions: frozenset[Condition] | None
    operator: str | None
    codes: frozenset[int]
    pattern: re.Pattern[str] | None

    def matches(self, f: FailureInfo) -> bool:
        if self.conditions is not None and f.condition not in self.conditions:
            return False
        if self.operator is not None and not self._code_matches(f.exit_code):
            return False
        return self.pattern is None or bool(self.pattern.search(f.termination_message or ""))

    def _code_matches(self, code: int | None) -> bool:
        return code is not None and (code in self.codes) == (self.operator == "In")


class Classifier:
    """Compiled categories: `classify(failure)` returns it with its category names set."""

    def __init__(self, categories: Sequence[ErrorCategory] = ()) -> None:
        self._categories = [(c.name, [_compile(r) for r in c.rules]) for c in categories]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._categories]

    def categories(self, failure: FailureInfo) -> list[str]:
        """The names of every category the failure is in, in configuration order."""
        return [name for name, rules in self._categories if any(r.matches(failure) for r in rules)]

    def classify(self, failure: FailureInfo) -> FailureInfo:
        return failure.model_copy(update={"categories": self.categories(failure)})


def _compile(rule: CategoryRule) -> _Rule:
    return _Rule(
        conditions=frozenset(rule.conditions) if rule.conditions is not None else None,
        operator=rule.exit_codes.operator if rule.exit_codes else None,
        codes=frozenset(rule.exit_codes.values) if rule.exit_codes else frozenset(),
        pattern=re.compile(rule.termination_message) if rule.termination_message else None,
    )
