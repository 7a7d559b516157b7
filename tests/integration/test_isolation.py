"""Isolation of real runs on this machine: cgroup limits, OOM, namespaces, orphans, GPUs."""

from __future__ import annotations

import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobfleet.worker.isolation import Isolation, worker_dir
from jobfleet.worker.isolation.gpus import GpuPool, detect_gpus
from jobfleet.worker.isolation.namespaces import Namespaces
from tests.conftest import IN_CI
from tests.helpers import wait_for
from tests.integration.isolationkit import Runner, alive, full_isolation

PY = sys.executable
ALLOC = "x = bytearray({mb} * 2**20); x[::4096] = b'1' * len(x[::4096]); print('done')"


@pytest.fixture
def iso(tmp_path: Path) -> Isolation:
    return full_isolation(tmp_path)


@pytest.fixture
def runner(tmp_path: Path, iso: Isolation) -> Iterator[Runner]:
    r = Runner(tmp_path, isolation=iso)
    yield r
    r.close()


def cgroup_dirs(iso: Isolation) -> list[Path]:
    backend = iso.backend
    bases = getattr(backend, "bases", None) or {"v2": backend.base}  # type: ignore[attr-defined]
    return [p for base in bases.values() if base.is_dir() for p in base.iterdir() if p.is_dir()]


# -- detection --------------------------------------------------------------------------------


def test_detection_reports_backend_limits_and_namespaces(iso: Isolation) -> None:
    info = iso.info()
    assert info["backend"] in ("cgroup1", "cgroup2")
    assert info["memory"] is True and info["pids"] is True and info["oom_detection"] is True
    assert info["pid_namespace"] is True and info["network_namespace"] is True
    assert info["pids_limit"] == 4096


def test_an_explicit_backend_that_does_not_work_refuses_to_start(tmp_path: Path) -> None:
    iso = Isolation.detect(worker=worker_dir("probe", str(tmp_path)))
    other = "cgroup1" if iso.backend.name == "cgroup2" else "cgroup2"
    if other in iso.skipped or iso.backend.name == "rlimits":
        from jobfleet.worker.isolation import IsolationError

        with pytest.raises(IsolationError, match=other):
            Isolation.detect(other, worker=worker_dir("probe", str(tmp_path)))  # type: ignore[arg-type]


# -- memory -----------------------------------------------------------------------------------


def test_a_job_over_its_memory_is_oom_killed_and_says_so(runner: Runner, iso: Isolation) -> None:
    run = runner.start([PY, "-c", ALLOC.format(mb=200)], resources={"memory": "64Mi"})
    done = runner.wait(run)
    assert done.outcome == "failed"
    assert done.failure is not None
    assert done.failure.condition == "OOM_KILLED", done.failure
    assert "memory limit of 67108864 bytes" in (done.failure.message or "")
    assert cgroup_dirs(iso) == []  # the run's cgroup is gone


def test_a_job_within_its_memory_is_unaffected(runner: Runner) -> None:
    run = runner.start([PY, "-c", ALLOC.format(mb=20)], resources={"memory": "128Mi"})
    done = runner.wait(run)
    assert done.outcome == "succeeded", done.failure
    assert runner.log(run).endswith("done\n")


def test_cpu_quota_and_pids_limit_are_set_on_the_runs_cgroup(
    runner: Runner, iso: Isolation
) -> None:
    if iso.backend.name == "cgroup1":
        script = (
            'c=$(grep ":cpu:" /proc/self/cgroup | cut -d: -f3); '
            "cat /sys/fs/cgroup/cpu$c/cpu.cfs_quota_us; "
            'p=$(grep ":pids:" /proc/self/cgroup | cut -d: -f3); cat /sys/fs/cgroup/pids$p/pids.max'
        )
        want = ["500000", "4096"]
    else:
        mount = iso.backend.mount  # type: ignore[attr-defined]
        script = f'c={mount}$(cut -d: -f3 /proc/self/cgroup); cat "$c/cpu.max" "$c/pids.max"'
        want = ["500000", "1000000", "4096"]
    run = runner.start(["sh", "-c", script], resources={"cpu": 0.5})
    assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
    assert runner.log(run).split() == want


FORKS = textwrap.dedent(
    """
    import os, time
    made = 0
    for _ in range(64):
        try:
            pid = os.fork()
        except BlockingIOError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    print(made)
    """
)


def test_a_fork_bomb_stops_at_the_pids_limit(tmp_path: Path) -> None:
    iso = full_isolation(tmp_path, pids=16)
    runner = Runner(tmp_path, isolation=iso)
    try:
        run = runner.start([PY, "-c", FORKS])
        assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
        assert 0 < int(runner.log(run)) < 16  # the limit counts the init and the job too
        assert cgroup_dirs(iso) == []  # and the 60 s sleepers went with the run
    finally:
        runner.close()


def test_the_rlimit_fallback_bounds_memory(tmp_path: Path) -> None:
    from jobfleet.worker.isolation.rlimits import Rlimits

    runner = Runner(tmp_path, isolation=Isolation(Rlimits(), Namespaces()))
    try:
        big = runner.wait(
            runner.start([PY, "-c", ALLOC.format(mb=300)], resources={"memory": "128Mi"})
        )
        assert big.outcome == "failed" and "MemoryError" in runner.log(big.run_id, "stderr")
        small = runner.wait(
            runner.start([PY, "-c", ALLOC.format(mb=10)], resources={"memory": "128Mi"})
        )
        assert small.outcome == "succeeded", runner.log(small.run_id, "stderr")
    finally:
        runner.close()


def test_a_restarted_worker_removes_the_cgroups_its_predecessor_left(
    tmp_path: Path, iso: Isolation
) -> None:
    from jobfleet.worker.isolation import Limits

    left = iso.prepare("LEFTOVER-1", ["sleep", "60"], Limits(memory=2**26), "default")
    import subprocess

    proc = subprocess.Popen(left.argv, start_new_session=True)
    wait_for(lambda: left.cgroup is not None and left.cgroup.pids(), what="the orphan to join")
    again = full_isolation(tmp_path)  # same worker name and data dir: same cgroup folder
    assert again.sweep() == 1
    assert proc.wait(timeout=5) != 0
    assert cgroup_dirs(iso) == []


# -- namespaces -------------------------------------------------------------------------------


def test_a_run_cannot_see_or_signal_another_run(runner: Runner, tmp_path: Path) -> None:
    marker = tmp_path / "a.pid"
    other = runner.start(["sh", "-c", f"echo $$ > {marker}; exec sleep 30"])
    wait_for(marker.exists, what="the first run to start")
    victim = runner.executor._procs[other].popen.pid  # the first run's pid as the worker sees it
    probe = (
        f"ls /proc | grep -qx {victim} && echo visible; "
        f"kill -0 {victim} 2>/dev/null && echo signalled; "
        "ls /proc | grep -c '^[0-9]'"
    )
    run = runner.start(["sh", "-c", probe])
    assert runner.wait(run).outcome == "succeeded"
    out = runner.log(run).split()
    assert "visible" not in out and "signalled" not in out
    assert int(out[-1]) <= 4  # the init, the shell, ls and grep: nothing of the worker's
    assert alive(victim)
    runner.executor.kill(other, "cancel")
    assert runner.wait(other).outcome == "cancelled"


@pytest.fixture
def host_port() -> Iterator[int]:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield srv.getsockname()[1]


CONNECT = textwrap.dedent(
    """
    import socket, sys
    def attempt(host, port):
        try:
            socket.create_connection((host, port), timeout=3).close()
            return "open"
        except OSError as exc:
            return type(exc).__name__
    own = socket.socket(); own.bind(("127.0.0.1", 0)); own.listen()
    print("host", attempt("127.0.0.1", int(sys.argv[1])))
    print("remote", attempt("192.0.2.1", 80))
    print("own-loopback", attempt("127.0.0.1", own.getsockname()[1]))
    """
)


def test_network_none_reaches_neither_the_host_nor_the_outside(
    runner: Runner, host_port: int
) -> None:
    run = runner.start([PY, "-c", CONNECT, str(host_port)], network="none")
    assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
    lines = dict(line.split() for line in runner.log(run).splitlines())
    assert lines["host"] != "open"
    assert lines["remote"] != "open"
    assert lines["own-loopback"] == "open"  # loopback inside its own namespace works


def test_network_default_reaches_the_host(runner: Runner, host_port: int) -> None:
    run = runner.start([PY, "-c", CONNECT, str(host_port)])
    assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
    assert "host open" in runner.log(run)


def test_a_sealed_worker_gives_every_job_loopback_only(tmp_path: Path, host_port: int) -> None:
    runner = Runner(tmp_path, isolation=full_isolation(tmp_path, sealed=True))
    try:
        run = runner.start([PY, "-c", CONNECT, str(host_port)])  # network: default
        assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
        assert "host open" not in runner.log(run)
    finally:
        runner.close()


def test_network_none_without_network_namespaces_is_a_start_error(tmp_path: Path) -> None:
    iso = Isolation.plain()
    runner = Runner(tmp_path, isolation=iso)
    try:
        done = runner.wait(runner.start(["true"], network="none"))
        assert done.failure is not None and done.failure.condition == "START_ERROR"
        assert "network namespace" in (done.failure.message or "")
    finally:
        runner.close()


# -- signals, deadlines and orphans -----------------------------------------------------------

DAEMON = textwrap.dedent(
    """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open(sys.argv[1], "w").write(str(os.getpid()))
            time.sleep(300)
        os._exit(0)
    while not os.path.exists(sys.argv[2]):  # the test says when the run's process may end
        time.sleep(0.02)
    """
)


def _outer_pid(pidfile: Path, ns: bool) -> int:
    """The daemon's pid as the host sees it (it wrote its own, namespaced, pid)."""
    inner = int(pidfile.read_text())
    if not ns:
        return inner
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if (
                line.startswith("NSpid:")
                and line.split()[-1] == str(inner)
                and "300" in (status.parent / "cmdline").read_text(errors="replace")
            ):
                return int(status.parent.name)
    raise AssertionError("daemon not found")


@pytest.mark.parametrize("namespaces", [True, False], ids=["pid-namespace", "cgroup-only"])
@pytest.mark.parametrize("how", ["exit", "cancel", "preempt", "deadline", "shutdown"])
def test_a_daemonised_grandchild_does_not_outlive_its_run(
    tmp_path: Path, namespaces: bool, how: str
) -> None:
    iso = full_isolation(tmp_path, namespaces=namespaces) if namespaces else None
    if iso is None:
        iso = Isolation.detect(worker=worker_dir("t", str(tmp_path)), namespaces=False)
        if not iso.backend.name.startswith("cgroup"):
            if IN_CI:
                pytest.fail("no cgroup backend on this machine")
            pytest.skip("no cgroup backend on this machine")
    runner = Runner(tmp_path, isolation=iso, grace=1.0)
    pidfile, gate = tmp_path / "daemon.pid", tmp_path / "gate"
    spec = {"timeout": "2s"} if how == "deadline" else {}
    run = runner.start([PY, "-c", DAEMON, str(pidfile), str(gate)], **spec)
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the daemon to start")
    daemon = _outer_pid(pidfile, namespaces)
    assert alive(daemon)
    if how == "exit":
        gate.touch()
    if how in ("cancel", "preempt"):
        runner.executor.kill(run, how)  # type: ignore[arg-type]
    if how == "shutdown":
        runner.close()
    else:
        done = runner.wait(run)
        want = {"exit": "succeeded", "cancel": "cancelled", "preempt": "failed"}.get(how, "failed")
        assert done.outcome == want
        runner.close()
    wait_for(lambda: not alive(daemon), timeout=5, what="the daemon to be gone")
    assert cgroup_dirs(iso) == []
    bases = getattr(iso.backend, "bases", {}) or {"v2": getattr(iso.backend, "base", None)}
    assert not any(b.exists() for b in bases.values() if b is not None)  # the worker's folder too


def test_sigterm_reaches_the_job_and_it_may_finish_gracefully(
    runner: Runner, tmp_path: Path
) -> None:
    marker = tmp_path / "term"
    script = f"trap 'echo bye > {marker}; exit 0' TERM; echo up; while :; do sleep 0.05; done"
    run = runner.start(["sh", "-c", script])
    wait_for(lambda: "up" in runner.log(run), what="the job to start")
    runner.executor.kill(run, "preempt")
    done = runner.wait(run, timeout=10)
    assert marker.read_text() == "bye\n"  # it ran its handler: SIGTERM, not SIGKILL
    assert done.failure is not None and done.failure.condition == "PREEMPTED"


def test_a_signal_death_is_reported_as_the_signal(runner: Runner) -> None:
    done = runner.wait(runner.start(["sh", "-c", "kill -SEGV $$"]))
    assert done.failure is not None and done.failure.condition == "SIGNALED"
    assert done.signal == 11 and done.exit_code is None


def test_exit_codes_pass_through_the_init(runner: Runner) -> None:
    done = runner.wait(runner.start(["sh", "-c", "echo boom >&2; exit 3"]))
    assert done.exit_code == 3
    assert done.failure is not None and done.failure.termination_message == "boom"


# -- GPUs -------------------------------------------------------------------------------------


def test_concurrent_gpu_jobs_get_distinct_devices_and_released_ones_are_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBFLEET_FAKE_GPUS", "0,1,2")
    runner = Runner(tmp_path, gpus=GpuPool(detect_gpus()))
    gate = tmp_path / "gate"
    show = (
        'echo "$CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES"; '
        f"while [ ! -e {gate} ]; do sleep 0.02; done"
    )
    try:
        a = runner.start(["sh", "-c", show], resources={"gpu": 1})
        b = runner.start(["sh", "-c", show], resources={"gpu": 1})
        wait_for(lambda: runner.log(a) and runner.log(b), what="both jobs to print")
        da, db = runner.log(a).split()[0], runner.log(b).split()[0]
        assert da != db and {da, db} <= {"0", "1", "2"}
        assert runner.log(a).split() == [da, da]  # NVIDIA_VISIBLE_DEVICES agrees
        none = runner.wait(runner.start(["sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES]"']))
        assert none.outcome == "succeeded"
        two = runner.start(["true"], resources={"gpu": 2})  # only one is free
        refused = runner.wait(two)
        assert refused.failure is not None and refused.failure.condition == "START_ERROR"
        assert "2 GPUs" in (refused.failure.message or "")
        gate.touch()
        runner.wait(a), runner.wait(b)
        c = runner.start(["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"], resources={"gpu": 3})
        assert runner.wait(c).outcome == "succeeded"
        assert runner.log(c).strip() == "0,1,2"  # every released device came back
    finally:
        runner.close()


def test_gpu_devices_come_from_config_without_the_fake_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOBFLEET_FAKE_GPUS", raising=False)
    assert detect_gpus(["3", "5"]) == ["3", "5"]


def test_namespaces_can_be_switched_off() -> None:
    ns = Namespaces.probe(enabled=False)
    assert not ns.pid and not ns.net and ns.why_not
