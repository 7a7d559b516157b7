"""docs/states.md is generated from the lifecycle core and must match it; the configuration
examples of the docs are valid, and their error transcripts are what `up` prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from jobfleet.lifecycle import EventType, JobState, Op, RunState
from jobfleet.lifecycle.docs import REGENERATE, render_states_markdown

STATES_MD = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def test_states_page_matches_the_code() -> None:
    committed = STATES_MD.read_text(encoding="utf-8") if STATES_MD.exists() else ""
    assert committed == render_states_markdown(), (
        f"{STATES_MD} is out of date with src/jobfleet/lifecycle: run `{REGENERATE}`"
    )


def test_the_page_names_every_state_op_and_event() -> None:
    page = render_states_markdown()
    for name in [*JobState, *RunState, *EventType]:
        assert f"`{name.value}`" in page, name
    for op in Op:
        assert f" : {op.value} / " in page, op


def _config_blocks() -> list[Any]:
    from jobfleet.config import Settings
    from tests.docs_examples import PAGES, blocks

    found = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in ("yaml", "yml") or block.file_name == "bad.yaml":
                continue
            data = yaml.safe_load(block.code)
            if isinstance(data, dict) and data and set(data) <= set(Settings.model_fields):
                found.append((block, data))
    return found


def test_the_configuration_examples_are_valid() -> None:
    """Every YAML example made of configuration keys is a configuration `up` accepts, together
    with the examples before it on its page (a retry rule may name a category defined above)."""
    from jobfleet.config import Settings

    found = _config_blocks()
    assert len(found) >= 5
    merged: dict[Path, dict[str, Any]] = {}
    for block, data in found:
        merged[block.page] = {**merged.get(block.page, {}), **data}
        try:
            Settings.model_validate(merged[block.page])
        except ValueError as exc:
            raise AssertionError(f"{block.where}: {exc}") from exc


def test_the_config_error_transcripts_are_what_up_prints(tmp_path: Path) -> None:
    """A `$ jobfleet up --config bad.yaml` transcript shows what `up` prints for the bad.yaml
    example before it."""
    from tests.docs_examples import PAGES, blocks

    checked = 0
    for page in PAGES:
        bad = None
        for block in blocks(page):
            if block.file_name == "bad.yaml":
                bad = block.code
            first, _, shown = block.code.partition("\n")
            if block.lang != "console" or first != "$ jobfleet up --config bad.yaml":
                continue
            assert bad is not None, f"{block.where}: no bad.yaml example before it"
            (tmp_path / "bad.yaml").write_text(bad)
            env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
            env.pop("JOBFLEET_CONFIG", None)
            done = subprocess.run(
                [str(Path(sys.executable).with_name("jobfleet")), "up", "--config", "bad.yaml"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 2, done
            assert done.stderr.strip() == shown.strip(), block.where
            checked += 1
    assert checked == 2


def _commands() -> list[tuple[str, Any]]:
    import click

    from jobfleet.cli.main import cli

    out: list[tuple[str, Any]] = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                out.append((f"{prefix}{name}", command))

    walk(cli, "")
    return out


def test_every_command_and_option_is_documented() -> None:
    """Each command is in the docs; where docs/cli.md has a section for it, that section names
    each of its options."""
    import click

    root = STATES_MD.parent
    cli_md = (root / "cli.md").read_text(encoding="utf-8")
    everything = "\n".join(
        p.read_text(encoding="utf-8") for p in [root.parent / "README.md", *root.glob("*.md")]
    )
    sections = {}
    for part in cli_md.split("\n## ")[1:]:
        heading, _, body = part.partition("\n")
        for name in re_commands(heading):
            sections[name] = body
    missing = []
    for path, command in _commands():
        if f"jobfleet {path}" not in everything:
            missing.append(path)
            continue
        body = sections.get(path)
        if body is None:
            continue
        for param in command.params:
            if isinstance(param, click.Option) and not any(o in body for o in param.opts):
                missing.append(f"{path} {max(param.opts, key=len)}")
    assert missing == [], missing


def re_commands(heading: str) -> list[str]:
    import re

    return re.findall(r"`jobfleet ([a-z][a-z -]*[a-z])`", heading)


def test_the_docs_cite_nothing_a_user_does_not_have() -> None:
    """README and docs/ point at files of this repository, never at the product contract or the
    seed documents the project was written from (a user has neither)."""
    root = STATES_MD.parents[1]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    cited = [p.name for p in pages if any(w in p.read_text() for w in ("PRODUCT.md", "seeds/"))]
    assert cited == []
