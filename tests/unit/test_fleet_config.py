"""The fleet's configuration keys and the worker's capacity detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobfleet.config import load_settings
from jobfleet.errors import ConfigError
from jobfleet.worker import capacity


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_fleet_keys_are_read_and_durations_parsed(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "reroute_after: 2m\nshards: [{name: gpu, labels: {accelerator: a100}}]\n"
            "worker: {drain_timeout: 30s, poll_interval: 0.2s}\n",
        )
    )
    assert s.reroute_after == 120 and s.shards[0].labels == {"accelerator": "a100"}
    assert s.worker.drain_timeout == 30 and s.worker.poll_interval == 0.2


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("worker: {drain_timeout: -1}\n", "worker.drain_timeout"),
        ("worker: {poll_interval: 0}\n", "worker.poll_interval"),
        ("reroute_after: soon\n", "reroute_after"),
        ("shards: [{name: 'bad name'}]\n", "shards[0].name"),
    ],
)
def test_bad_fleet_keys_name_their_path(tmp_path: Path, text: str, path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
        load_settings(write(tmp_path, text))


def test_capacity_given_is_used_as_is() -> None:
    c = capacity.detect(cpu=1.5, memory=2**30, gpu=2)
    assert (c.cpu_milli, c.memory, c.gpu) == (1500, 2**30, 2)


def test_detected_capacity_is_within_what_the_machine_has() -> None:
    c = capacity.detect()
    assert 0 < c.cpu_milli <= (os.cpu_count() or 1) * 1000
    assert 0 < c.memory <= capacity._meminfo_total()


def test_gpus_are_counted_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA A100 (UUID: GPU-1)'\n"
        "echo 'GPU 1: NVIDIA A100 (UUID: GPU-2)'\n"
    )
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert capacity.detect_gpus() == 2
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert capacity.detect_gpus() == 0


def test_a_cgroup_memory_limit_bounds_the_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    monkeypatch.setattr(capacity, "CGROUP", tmp_path)
    assert capacity.detect_memory() == min(2**30, capacity._meminfo_total())
    assert capacity.detect_cpus() <= 1.5
