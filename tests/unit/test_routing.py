"""Master routing (pure): eligibility by capacity and selector, headroom, spreading, reasons."""

from __future__ import annotations

from jobfleet.scheduling.placement import Room
from jobfleet.scheduling.routing import Need, ShardState, can_hold, explain, reroute, route

GI = 2**30


def shard(
    name: str,
    *workers: tuple[int, int, int],
    labels: dict[str, str] | None = None,
    used: tuple[int, int, int] = (0, 0, 0),
    queued: tuple[int, int, int] = (0, 0, 0),
    worker_labels: dict[str, str] | None = None,
) -> ShardState:
    totals = [
        Room(f"{name}-w{i}", c, m, g, dict(worker_labels or {}))
        for i, (c, m, g) in enumerate(workers)
    ]
    free = [
        Room(r.worker, r.cpu_milli - used[0], r.memory - used[1], r.gpu - used[2], r.labels)
        for r in totals
    ]
    return ShardState(name, labels or {}, totals, free, queued)


def need(job: str, cpu: float = 1, mem: int = GI, gpu: int = 0, **selector: str) -> Need:
    return Need(job, int(cpu * 1000), mem, gpu, selector)


def test_a_job_goes_to_the_shard_with_most_free_room_in_its_dominant_resource() -> None:
    small = shard("small", (4000, 64 * GI, 0))
    big = shard("big", (32000, 64 * GI, 0))
    plan = route([need("j", cpu=2)], [small, big])
    assert plan.moves == {"j": "big"} and plan.reasons == {}


def test_gpu_jobs_go_where_the_gpus_are_even_if_another_shard_has_more_cpu() -> None:
    cpu = shard("cpu", (64000, 256 * GI, 0))
    gpu = shard("gpu", (8000, 64 * GI, 4))
    plan = route([need("g", gpu=2), need("c", cpu=4)], [cpu, gpu])
    assert plan.moves == {"g": "gpu", "c": "cpu"}


def test_a_burst_spreads_over_equal_shards_instead_of_piling_on_one() -> None:
    a = shard("a", (4000, 16 * GI, 0))
    b = shard("b", (4000, 16 * GI, 0))
    plan = route([need(f"j{i}", cpu=1) for i in range(8)], [a, b])
    placed = list(plan.moves.values())
    assert placed.count("a") == 4 and placed.count("b") == 4


def test_jobs_already_waiting_in_a_shard_count_against_its_room() -> None:
    a = shard("a", (8000, 16 * GI, 0), queued=(7000, GI, 0))
    b = shard("b", (4000, 16 * GI, 0))
    assert route([need("j", cpu=1)], [a, b]).moves == {"j": "b"}


def test_a_busy_shard_still_gets_the_job_when_it_is_the_only_one_that_can_hold_it() -> None:
    big = shard("big", (32000, 64 * GI, 0), used=(32000, 0, 0))
    small = shard("small", (2000, 4 * GI, 0))
    assert route([need("j", cpu=16)], [big, small]).moves == {"j": "big"}


def test_selector_matches_shard_labels_or_worker_labels() -> None:
    plain = shard("plain", (64000, 64 * GI, 0))
    zoned = shard("zoned", (4000, 8 * GI, 0), labels={"zone": "eu"})
    fast = shard("fast", (4000, 8 * GI, 0), worker_labels={"disk": "ssd"})
    plan = route(
        [need("z", zone="eu"), need("f", disk="ssd"), need("n", zone="us")], [plain, zoned, fast]
    )
    assert plan.moves == {"z": "zoned", "f": "fast"}
    assert "zone=us" in plan.reasons["n"] and "selector" in plan.reasons["n"]


def test_too_large_for_every_worker_stays_with_a_reason_naming_the_largest() -> None:
    only = shard("default", (2000, 8 * GI, 0))
    plan = route([need("huge", cpu=4)], [only])
    assert plan.moves == {}
    assert plan.reasons["huge"].startswith("no worker in shard default is large enough")
    assert "2 CPU" in plan.reasons["huge"]


def test_capacity_is_per_worker_not_summed_over_the_shard() -> None:
    many_small = shard("s", (2000, 8 * GI, 0), (2000, 8 * GI, 0), (2000, 8 * GI, 0))
    assert not can_hold(need("j", cpu=3), many_small)
    assert can_hold(need("j", cpu=2), many_small)


def test_no_live_worker_says_so() -> None:
    empty = ShardState("default")
    assert route([need("j")], [empty]).reasons == {"j": "no worker is registered in shard default"}
    assert explain(need("j"), []) == "no worker is registered"


def test_reroute_returns_jobs_whose_shard_lost_its_workers_or_that_fit_elsewhere_now() -> None:
    gone = ShardState("gone")
    busy = shard("busy", (4000, 8 * GI, 0), used=(4000, 0, 0))
    idle = shard("idle", (4000, 8 * GI, 0))
    lonely = shard("lonely", (1000, GI, 0), used=(1000, 0, 0), labels={"x": "y"})
    stuck = [
        Need("orphan", 1000, GI, 0, {}, "gone"),
        Need("waiting", 1000, GI, 0, {}, "busy"),
        Need("only-here", 1000, GI, 0, {"x": "y"}, "lonely"),
    ]
    assert reroute(stuck, [gone, busy, idle, lonely]) == ["orphan", "waiting"]
