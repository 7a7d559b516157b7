"""Isolation parts that need no privileges: config keys, cgroup v2 files, GPU pool, log stamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobfleet.config import load_settings
from jobfleet.errors import ConfigError
from jobfleet.models import JobSpec
from jobfleet.sealed import sealed_errors
from jobfleet.worker.isolation import Limits
from jobfleet.worker.isolation.base import own_cgroup
from jobfleet.worker.isolation.cgroup2 import CgroupV2, find_mount
from jobfleet.worker.isolation.gpus import GpuPool
from jobfleet.worker.isolation.namespaces import Namespaces
from jobfleet.worker.logpump import split_stamp, stamp, strip_timestamps


def test_worker_isolation_keys_are_validated_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("worker: {isolation: docker}\n")
    with pytest.raises(ConfigError, match=r"worker\.isolation"):
        load_settings(bad)
    bad.write_text("worker: {log_limit: 10}\n")
    with pytest.raises(ConfigError, match=r"worker\.log_limit: .*at least 4096"):
        load_settings(bad)
    bad.write_text("worker: {pids_limit: 0}\n")
    with pytest.raises(ConfigError, match=r"worker\.pids_limit"):
        load_settings(bad)
    good = tmp_path / "g.yaml"
    good.write_text("worker: {isolation: rlimits, log_limit: 1Mi, gpu_devices: ['0', '2']}\n")
    w = load_settings(good).worker
    assert (w.isolation, w.log_limit, w.gpu_devices) == ("rlimits", 2**20, ["0", "2"])


def test_outputs_must_stay_inside_the_working_dir() -> None:
    assert JobSpec(command=["x"], outputs=["out/*.csv"]).outputs == ["out/*.csv"]
    for bad in ("/etc/passwd", "../x", "a/../../b", ""):
        with pytest.raises(ValueError, match="relative to the working dir"):
            JobSpec(command=["x"], outputs=[bad])


def test_sealed_errors_name_each_field() -> None:
    specs = [
        JobSpec(command=["x"], payload_uri="file:///data/in.tgz", callback_url="http://[::1]/h"),
        JobSpec(command=["x"], payload_uri="http://example.org/a"),
    ]
    errors = sealed_errors(specs, batch=True, allow=[])
    assert [e["loc"] for e in errors] == [["jobs", 1, "payload_uri"]]


def _fake_v2(root: Path) -> Path:
    """A directory shaped like a cgroup2 mount (the kernel would create the files itself)."""
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_cgroup2_writes_the_runs_limits(tmp_path: Path) -> None:
    v2 = CgroupV2("w-1", mount=_fake_v2(tmp_path))
    v2.base.mkdir(parents=True)  # the probe made it, with the controllers enabled
    group = v2.create("RUN-1", Limits(memory=64 * 2**20, cpu_milli=1500, pids=100))
    d = tmp_path / "jobfleet" / "w-1" / "RUN-1"
    assert (d / "memory.max").read_text() == str(64 * 2**20)
    assert (d / "cpu.max").read_text() == "1500000 1000000"
    assert (d / "pids.max").read_text() == "100"
    assert group.procs_files() == [str(d / "cgroup.procs")]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert group.oom_killed()
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    assert not group.oom_killed()


def test_cgroup2_probe_says_which_controllers_are_missing(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset io\n")
    with pytest.raises(OSError, match="memory, cpu, pids"):
        CgroupV2("w", mount=tmp_path).probe()


def test_cgroup_paths_are_read_from_proc(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert find_mount(str(mounts)) == Path("/sys/fs/cgroup/unified")
    cg = tmp_path / "cgroup"
    cg.write_text("4:memory:/a/b\n1:cpu,cpuacct:/c\n0::/d\n")
    assert own_cgroup("memory", str(cg)) == "/a/b"
    assert own_cgroup("cpu", str(cg)) == "/c"
    assert own_cgroup(None, str(cg)) == "/d"


def test_gpu_pool_hands_out_distinct_devices_and_takes_them_back() -> None:
    pool = GpuPool(["0", "1", "2"])
    a, b = pool.acquire("a", 1), pool.acquire("b", 2)
    assert set(a).isdisjoint(b) and len(set(a + b)) == 3
    with pytest.raises(LookupError, match="asks for 1 GPUs and this worker has 0 free of 3"):
        pool.acquire("c", 1)
    pool.release("b")
    assert pool.acquire("c", 2) == b
    assert pool.env([]) == {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"}
    assert GpuPool([]).env([]) == {}


def test_log_stamps_round_trip() -> None:
    s = stamp(1_800_000_000.25).decode()
    assert s == "2027-01-15T08:00:00.250000Z "
    assert split_stamp(s + "hello") == ("2027-01-15T08:00:00.250000Z", "hello")
    assert strip_timestamps(f"{s}a\n{s}b\nplain\n") == "a\nb\nplain\n"


def test_without_namespaces_the_argv_only_joins_the_cgroup() -> None:
    argv, as_status = Namespaces().wrap(["true"], ["/cg/cgroup.procs"])
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-3:] == ["/cg/cgroup.procs", "--", "true"]
    assert not as_status
    assert Namespaces().wrap(["true"], []) == (["true"], False)


def test_weak_isolation_is_spelled_out() -> None:
    from jobfleet.worker.isolation import Isolation
    from jobfleet.worker.isolation.rlimits import Rlimits

    iso = Isolation(Rlimits(), Namespaces(why_not="unshare refused"), skipped={"cgroup1": "EACCES"})
    weak = iso.weaknesses()
    assert weak[0] == "no cgroup limits, using rlimits (cgroup1: EACCES)"
    assert "no PID namespaces (unshare refused)" in weak
    assert iso.info()["backend"] == "rlimits" and iso.info()["oom_detection"] is False


def test_the_start_up_line_reads_as_words_not_a_dict() -> None:
    from jobfleet.worker.isolation import Isolation
    from jobfleet.worker.isolation.rlimits import Rlimits

    weak = Isolation(Rlimits(), Namespaces(why_not="refused"), skipped={"cgroup2": "no memory"})
    assert weak.summary().endswith(", no namespaces; not usable: cgroup2 (no memory)")
    assert weak.summary().startswith("rlimits")
    strong = Isolation(Rlimits(), Namespaces(pid=True, net=True), sealed=True)
    assert strong.summary().endswith(", PID and network namespaces, sealed")
    assert "{" not in weak.summary() + strong.summary()


def test_configured_gpu_count_and_devices_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobfleet.worker.isolation.gpus import gpu_devices

    monkeypatch.setenv("JOBFLEET_FAKE_GPUS", "4,5,6")
    assert gpu_devices(None, None) == ["4", "5", "6"]
    assert gpu_devices(2, None) == ["4", "5"]
    monkeypatch.setenv("JOBFLEET_FAKE_GPUS", "")
    assert gpu_devices(2, None) == ["0", "1"]
    assert gpu_devices(None, None) == []
