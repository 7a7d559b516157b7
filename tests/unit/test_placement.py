"""Placement (pure): best fit, in order, never over-committing a worker; and its reasons."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from jobfleet.scheduling.placement import Demand, Room, explain, place

GI = 2**30


def room(worker: str, cpu: int, mem: int, gpu: int = 0) -> Room:
    return Room(worker, cpu, mem, gpu)


def fresh(rooms: list[Room]) -> list[Room]:
    """`place` uses up the rooms it is given: hand it copies so the originals stay intact."""
    return copy.deepcopy(rooms)


@st.composite
def cluster(draw: st.DrawFn) -> tuple[list[Demand], list[Room], list[Room]]:
    n_workers = draw(st.integers(0, 5))
    totals: list[Room] = []
    rooms: list[Room] = []
    for i in range(n_workers):
        cpu = draw(st.integers(1, 64)) * 500
        mem = draw(st.integers(1, 64)) * GI // 4
        gpu = draw(st.integers(0, 4))
        totals.append(Room(f"w{i}", cpu, mem, gpu))
        rooms.append(
            Room(
                f"w{i}",
                draw(st.integers(0, cpu)),
                draw(st.integers(0, mem)),
                draw(st.integers(0, gpu)),
            )
        )
    demands = [
        Demand(
            f"j{k}",
            draw(st.integers(1, 16_000)),
            draw(st.integers(1, 8 * GI)),
            draw(st.sampled_from([0, 0, 0, 1, 2])),
        )
        for k in range(draw(st.integers(0, 30)))
    ]
    return demands, rooms, totals


@settings(max_examples=200, deadline=None)
@given(cluster())
def test_placement_never_over_commits_and_skips_no_job_that_fits(
    data: tuple[list[Demand], list[Room], list[Room]],
) -> None:
    demands, rooms, totals = data
    given_totals = fresh(totals)
    plan = place(demands, fresh(rooms), given_totals, "s")

    by_id = {d.job_id: d for d in demands}
    placed_ids = [j for j, _ in plan.placed]
    # Every job is either placed once or has a reason, never both.
    assert len(placed_ids) == len(set(placed_ids))
    assert set(placed_ids).isdisjoint(plan.reasons)
    assert set(placed_ids) | set(plan.reasons) == set(by_id)
    assert all(plan.reasons.values())
    # Nothing placed on a worker that does not exist, and never more than its free room.
    free = {r.worker: r for r in rooms}
    for worker, r in free.items():
        mine = [by_id[j] for j, w in plan.placed if w == worker]
        assert sum(d.cpu_milli for d in mine) <= r.cpu_milli
        assert sum(d.memory for d in mine) <= r.memory
        assert sum(d.gpu for d in mine) <= r.gpu
    assert {w for _, w in plan.placed} <= set(free)
    # Order: replaying the plan, a job left out had no worker with room at its turn.
    left = {r.worker: [r.cpu_milli, r.memory, r.gpu] for r in rooms}
    where = dict(plan.placed)
    for d in demands:
        if d.job_id in where:
            c = left[where[d.job_id]]
            c[0], c[1], c[2] = c[0] - d.cpu_milli, c[1] - d.memory, c[2] - d.gpu
        else:
            assert not any(
                d.cpu_milli <= c[0] and d.memory <= c[1] and d.gpu <= c[2] for c in left.values()
            )
    # The workers' totals are only read, never used up.
    assert given_totals == totals


def test_a_job_earlier_in_order_is_placed_before_a_later_one_competes() -> None:
    w = [room("w", 4000, 8 * GI)]
    big = Demand("big", 3000, 6 * GI)
    small = Demand("small", 2000, 2 * GI)

    plan = place([big, small], fresh(w), fresh(w), "s")
    assert plan.placed == [("big", "w")]
    assert set(plan.reasons) == {"small"}

    plan = place([small, big], fresh(w), fresh(w), "s")
    assert plan.placed == [("small", "w")]
    assert set(plan.reasons) == {"big"}


def test_a_job_that_does_not_fit_does_not_block_smaller_ones_behind_it() -> None:
    w = [room("w", 2000, 4 * GI)]
    plan = place(
        [Demand("huge", 8000, GI), Demand("a", 1000, GI), Demand("b", 1000, GI)],
        fresh(w),
        fresh(w),
        "s",
    )
    assert plan.placed == [("a", "w"), ("b", "w")]
    assert set(plan.reasons) == {"huge"}


def test_best_fit_picks_the_tighter_worker() -> None:
    totals = [room("roomy", 8000, 16 * GI), room("tight", 8000, 16 * GI)]
    free = [room("roomy", 8000, 16 * GI), room("tight", 2000, 3 * GI)]

    plan = place([Demand("j", 1000, GI)], fresh(free), fresh(totals), "s")
    assert plan.placed == [("j", "tight")]

    # Listed the other way round, the choice is the same: it is not "first that fits".
    plan = place([Demand("j", 1000, GI)], fresh(free[::-1]), fresh(totals[::-1]), "s")
    assert plan.placed == [("j", "tight")]


def test_best_fit_moves_on_once_the_tight_worker_is_full() -> None:
    totals = [room("roomy", 8000, 16 * GI), room("tight", 2000, 2 * GI)]
    free = fresh(totals)
    plan = place([Demand(f"j{i}", 1000, GI) for i in range(4)], free, fresh(totals), "s")
    assert plan.placed == [("j0", "tight"), ("j1", "tight"), ("j2", "roomy"), ("j3", "roomy")]
    assert plan.reasons == {}


def test_gpu_job_goes_only_where_there_are_gpus() -> None:
    totals = [room("cpu-only", 64_000, 256 * GI), room("gpu", 8000, 32 * GI, gpu=2)]
    plan = place(
        [Demand("g1", 1000, GI, gpu=2), Demand("g2", 1000, GI, gpu=1)],
        fresh(totals),
        fresh(totals),
        "s",
    )
    assert plan.placed == [("g1", "gpu")]
    assert "GPUs" in plan.reasons["g2"]


def test_explain_a_job_too_big_for_any_worker() -> None:
    totals = [room("a", 8000, 16 * GI), room("b", 4000, 32 * GI)]
    d = Demand("j", 16_000, GI)

    reason = explain(d, fresh(totals), totals, "gpu-pool")
    assert reason.startswith("no worker in shard gpu-pool is large enough")
    assert "16000m CPU" in reason and "8000m" in reason

    plan = place([d], fresh(totals), totals, "gpu-pool")
    assert plan.placed == [] and plan.reasons == {"j": reason}

    gpu_reason = explain(Demand("g", 1000, GI, gpu=2), fresh(totals), totals, "gpu-pool")
    assert "large enough" in gpu_reason and "GPUs" in gpu_reason


def test_explain_with_no_worker_registered() -> None:
    d = Demand("j", 1000, GI)
    assert explain(d, [], [], "main") == "no worker is registered in shard main"
    plan = place([d], [], [], "main")
    assert plan.placed == [] and plan.reasons == {"j": "no worker is registered in shard main"}


def test_explain_a_job_that_would_fit_an_idle_worker_waits_for_room() -> None:
    totals = [room("a", 8000, 16 * GI)]
    busy = [room("a", 500, 16 * GI)]
    reason = explain(Demand("j", 1000, GI), busy, totals, "s")
    assert "large enough" not in reason
    assert "waiting for free CPU" in reason
