"""The error-category classifier and its configuration (PRODUCT.md §5, §13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobfleet.config import load_settings
from jobfleet.errors import ConfigError
from jobfleet.failures import Classifier, Condition, ErrorCategory, FailureInfo

EXAMPLE = """
error_categories:
  - name: cuda-oom
    rules:
      - conditions: [OOM_KILLED]
      - termination_message: "CUDA out of memory"
  - name: bad-input
    rules:
      - exit_codes: {operator: In, values: [2, 64, 65]}
  - name: odd-exit-on-timeout
    rules:
      - {conditions: [DEADLINE_EXCEEDED], exit_codes: {operator: NotIn, values: [0, 143]}}
retry:
  rules:
    - {on_categories: [bad-input], action: fail}
"""


def classifier(tmp_path: Path, text: str = EXAMPLE) -> Classifier:
    path = tmp_path / "jobfleet.yaml"
    path.write_text(text)
    return load_settings(path).classifier()


def f(condition: Condition, **kw: object) -> FailureInfo:
    return FailureInfo(condition=condition, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (f(Condition.OOM_KILLED, signal=9), ["cuda-oom"]),  # first rule of cuda-oom
        (
            f(Condition.EXIT_NONZERO, exit_code=1, termination_message="x: CUDA out of memory."),
            ["cuda-oom"],
        ),  # second rule: the regex is searched, not anchored
        (f(Condition.EXIT_NONZERO, exit_code=65), ["bad-input"]),
        (
            f(Condition.EXIT_NONZERO, exit_code=2, termination_message="CUDA out of memory"),
            ["cuda-oom", "bad-input"],
        ),  # every category that matches, in configured order
        (f(Condition.EXIT_NONZERO, exit_code=1), []),
        (f(Condition.START_ERROR), []),  # no exit code: exit_codes never matches
        (f(Condition.DEADLINE_EXCEEDED, exit_code=1), ["odd-exit-on-timeout"]),
        (f(Condition.DEADLINE_EXCEEDED, exit_code=143), []),  # NotIn
        (f(Condition.EXIT_NONZERO, exit_code=3), []),  # AND: the condition does not match
        (f(Condition.DEADLINE_EXCEEDED), []),  # AND: no exit code to compare
    ],
)
def test_rules_or_fields_and(tmp_path: Path, failure: FailureInfo, expected: list[str]) -> None:
    c = classifier(tmp_path)
    assert c.categories(failure) == expected
    assert c.classify(failure).categories == expected
    assert c.classify(failure).condition is failure.condition


def test_classify_replaces_categories_from_elsewhere() -> None:
    c = Classifier(
        [ErrorCategory.model_validate({"name": "a", "rules": [{"conditions": ["SIGNALED"]}]})]
    )
    got = c.classify(FailureInfo(condition=Condition.EXIT_NONZERO, categories=["forged"]))
    assert got.categories == []


def test_no_categories_means_no_names() -> None:
    assert Classifier().classify(FailureInfo(condition=Condition.OOM_KILLED)).categories == []


def _cats(rules: str, *more: str) -> str:
    return "error_categories:\n  - name: ok\n    rules: [{conditions: [OOM_KILLED]}]\n" + "\n".join(
        [f"  - name: second\n    rules: {rules}", *more]
    )


BAD = [
    pytest.param(
        _cats("[{conditions: [OOPS]}]"),
        "error_categories[1].rules[0].conditions[0]",
        id="unknown-condition",
    ),
    pytest.param(
        _cats("[{exit_codes: {operator: Maybe, values: [1]}}]"),
        "error_categories[1].rules[0].exit_codes.operator",
        id="bad-operator",
    ),
    pytest.param(
        _cats("[{exit_codes: {operator: In, values: []}}]"),
        "error_categories[1].rules[0].exit_codes.values",
        id="empty-values",
    ),
    pytest.param(
        _cats("[{conditions: []}]"),
        "error_categories[1].rules[0].conditions",
        id="empty-conditions",
    ),
    pytest.param(
        _cats("[{termination_message: 'CUDA (out'}]"),
        "error_categories[1].rules[0].termination_message: bad regex",
        id="bad-regex",
    ),
    pytest.param(
        _cats("[{}]"), "error_categories[1].rules[0]: a rule needs at least one of", id="empty-rule"
    ),
    pytest.param(_cats("[]"), "error_categories[1].rules", id="no-rules"),
    pytest.param(
        _cats("[{conditions: [OOM_KILLED], extra: 1}]"),
        "error_categories[1].rules[0].extra",
        id="unknown-field",
    ),
    pytest.param(
        _cats("[{conditions: [OOM_KILLED]}]").replace("name: second", "name: ok"),
        "error_categories[1].name: duplicate category name 'ok'",
        id="duplicate-name",
    ),
    pytest.param(
        _cats(
            "[{conditions: [OOM_KILLED]}]",
            "retry: {rules: [{on_categories: [nope], action: fail}]}",
        ),
        "retry.rules[0].on_categories: unknown error category 'nope'",
        id="unknown-category-in-retry",
    ),
    pytest.param(
        _cats(
            "[{conditions: [OOM_KILLED]}]",
            "queues: [{name: q, retry: {rules: [{on_categories: [ok, nah], action: fail}]}}]",
        ),
        "queues[0].retry.rules[0].on_categories: unknown error category 'nah'",
        id="unknown-category-in-queue-retry",
    ),
]


@pytest.mark.parametrize(("text", "where"), BAD)
def test_a_bad_category_config_refuses_to_start_naming_the_path(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "jobfleet.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert where in str(err.value), str(err.value)
    assert "Value error" not in str(err.value)


def test_the_product_example_is_valid(tmp_path: Path) -> None:
    assert classifier(tmp_path).names == ["cuda-oom", "bad-input", "odd-exit-on-timeout"]
