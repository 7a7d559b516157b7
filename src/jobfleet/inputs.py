"""What jobfleet accepts from outside, as one vocabulary (pure): text, integers, numbers, depth.

- text: no NUL byte (no process argument, path, environment string or PostgreSQL text can hold
  one) and no lone surrogate (not encodable as UTF-8: no database or file name can hold one);
- integers: within int64 (what the database stores; a 400-digit number is refused, not an
  OverflowError deep in a driver);
- numbers: finite (JSON has no NaN or Infinity, and `1e400` would parse to inf);
- JSON: at most MAX_DEPTH levels of nesting.

`loads` decodes a request body under these rules and names the place of each refusal
(`["body", "jobs", 3, "env", "K"]`); the server's edge (`server/guard.py`) applies it to every
JSON body, and models that take outside input derive from `Bounded`, which holds their input to
the same rules however it arrives (one walk, `problems`, for both). `clean` is
the other way to meet the rule, for text jobfleet did not choose but must keep (a job's
stderr, its file names): it replaces what cannot be stored with U+FFFD.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from jobfleet.errors import InvalidInput

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DEPTH = 32
MAX_ERRORS = 50
CHECKED = "jobfleet.inputs.checked"  # validation context / ASGI scope key: `loads` ran on it
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be taken as text, or None."""
    found = _BAD_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text cannot contain a NUL byte (\\u0000)"
    return "text cannot contain a lone surrogate (not valid Unicode)"


def clean(value: str) -> str:
    """`value` with every NUL byte and lone surrogate replaced by U+FFFD."""
    return _BAD_TEXT.sub("\ufffd", value)


def loads(raw: bytes | str, where: str = "body") -> Any:
    """Decode JSON under the rules above; InvalidInput (422) naming each bad place."""
    try:
        value = json.loads(raw)  # NaN, Infinity, 1e400: floats `problems` refuses
    except RecursionError:
        raise _refused([([where], f"nested deeper than {MAX_DEPTH} levels")]) from None
    except (ValueError, UnicodeDecodeError) as exc:  # a 5,000-digit integer is a ValueError
        raise InvalidInput(
            f"the body is not valid JSON: {exc}", [{"loc": [where], "msg": "invalid JSON"}]
        ) from None
    found = problems(value, [where])
    if found:
        raise _refused(found)
    return value


class Bounded(BaseModel):
    """A model whose input, however it arrives (JSON, Python), holds only what `loads` takes:
    its fields' own types and bounds come on top."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get(CHECKED):
            return data  # decoded by `loads` (the edge): checked once already
        found = problems(data, [])
        if found:
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, loc)) or 'value'}: {why}" for loc, why in found[:5])
            )
        return data


def problems(value: Any, root: list[Any] | None = None) -> list[tuple[list[Any], str]]:
    """(place, why) of each value `loads` refuses, at most MAX_ERRORS (iterative: no depth).

    A hot path (every body of every request): places are kept as (parent, key) links and made
    into lists only for what is refused."""
    found: list[tuple[list[Any], str]] = []
    stack: list[tuple[Any, Any, int]] = [(value, None, 0)]
    while stack and len(found) < MAX_ERRORS:
        item, link, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if _BAD_TEXT.search(item) is None:
                continue
            why = text_problem(item)
        elif kind is dict or kind is list:
            if depth >= MAX_DEPTH:
                why = f"nested deeper than {MAX_DEPTH} levels"
            else:
                _push(stack, item, link, depth + 1, found, root)
                continue
        elif kind is int:
            if INT64_MIN <= item <= INT64_MAX:
                continue
            why = "integer out of range (int64)"
        elif kind is float:
            if math.isfinite(item):
                continue
            why = "numbers must be finite (no NaN, Infinity)"
        else:
            continue  # True, False, None (and what a Python caller passes: the model checks)
        found.append((_place(link, root), why or "refused"))
    return found


def _push(
    stack: list[tuple[Any, Any, int]],
    item: dict[str, Any] | list[Any],
    link: Any,
    depth: int,
    found: list[tuple[list[Any], str]],
    root: list[Any] | None,
) -> None:
    if isinstance(item, list):
        stack.extend((v, (link, i), depth) for i, v in enumerate(item))
        return
    for key, v in item.items():
        if type(key) is str and _BAD_TEXT.search(key) is not None:
            found.append((_place((link, clean(key)), root), f"key: {text_problem(key)}"))
            key = clean(key)
        stack.append((v, (link, key), depth))


def _place(link: Any, root: list[Any] | None) -> list[Any]:
    keys: list[Any] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return [*(root or []), *reversed(keys)]


def _refused(found: list[tuple[list[Any], str]]) -> InvalidInput:
    errors = [{"loc": loc, "msg": why} for loc, why in found]
    first = ".".join(str(p) for p in errors[0]["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidInput(f"{first}: {errors[0]['msg']}{more}", errors)
