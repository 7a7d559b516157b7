"""The scheduling cycle (pure): fair share, limits, priority classes, gangs, reasons."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobfleet.scheduling.cycle import lanes_of, plan_cycle
from jobfleet.scheduling.fairshare import QueueState, dominant_share
from jobfleet.scheduling.fit import Fitter
from jobfleet.scheduling.placement import Demand, Room

GI = 2**30


def jobs(queue: str, n: int, cpu: int = 1000, mem: int = GI, **kw: object) -> list[Demand]:
    return [Demand(f"{queue}-{i}", cpu, mem, queue=queue, **kw) for i in range(n)]  # type: ignore[arg-type]


def workers(n: int, cpu: int = 8000, mem: int = 32 * GI, gpu: int = 0) -> list[Room]:
    return [Room(f"w{i}", cpu, mem, gpu) for i in range(n)]


@st.composite
def snapshot(draw: st.DrawFn) -> tuple[list[Demand], dict[str, QueueState], list[Room]]:
    rooms = [
        Room(
            f"w{i}",
            draw(st.integers(0, 16)) * 500,
            draw(st.integers(0, 16)) * GI // 2,
            draw(st.integers(0, 4)),
        )
        for i in range(draw(st.integers(0, 6)))
    ]
    names = ["a", "b", "c"]
    queues = {
        q: QueueState(
            q,
            weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
            max_running_jobs=draw(st.one_of(st.none(), st.integers(0, 6))),
            max_cpu_milli=draw(st.one_of(st.none(), st.integers(0, 8).map(lambda n: n * 1000))),
            max_gpu=draw(st.one_of(st.none(), st.integers(0, 3))),
        )
        for q in names
    }
    demands = [
        Demand(
            f"j{k}",
            draw(st.integers(1, 8)) * 500,
            draw(st.integers(1, 8)) * GI // 2,
            draw(st.sampled_from([0, 0, 1, 2])),
            queue=draw(st.sampled_from(names)),
            class_priority=draw(st.sampled_from([0, 0, 100])),
        )
        for k in range(draw(st.integers(0, 40)))
    ]
    return demands, queues, rooms


@settings(max_examples=300, deadline=None)
@given(snapshot())
def test_a_cycle_never_over_commits_a_worker_nor_exceeds_a_queue_limit(
    data: tuple[list[Demand], dict[str, QueueState], list[Room]],
) -> None:
    demands, queues, rooms = data
    plan = plan_cycle(lanes_of(demands), queues, rooms, rooms, "s")
    by_id = {d.job_id: d for d in demands}
    room = {r.worker: [r.cpu_milli, r.memory, r.gpu] for r in rooms}
    held = {q: [0, 0, 0] for q in queues}
    for job_id, worker in plan.placed:
        d = by_id[job_id]
        room[worker] = [
            room[worker][0] - d.cpu_milli,
            room[worker][1] - d.memory,
            room[worker][2] - d.gpu,
        ]
        assert min(room[worker]) >= 0, (worker, room[worker])
        h = held[d.queue]
        h[0], h[1], h[2] = h[0] + 1, h[1] + d.cpu_milli, h[2] + d.gpu
    for q, (n, cpu, gpu) in held.items():
        limits = queues[q]
        assert limits.max_running_jobs is None or n <= limits.max_running_jobs
        assert limits.max_cpu_milli is None or cpu <= limits.max_cpu_milli
        assert limits.max_gpu is None or gpu <= limits.max_gpu
    placed = {j for j, _ in plan.placed}
    assert len(placed) == len(plan.placed)  # no job placed twice
    assert not placed & set(plan.reasons)  # a placed job has no reason
    assert all(d.job_id in placed or d.job_id in plan.reasons for d in demands[:40])


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([(1.0, 3.0), (1.0, 1.0), (2.0, 5.0)]), st.integers(4, 40))
def test_with_equal_demand_shares_converge_to_the_weights(
    weights: tuple[float, float], n_workers: int
) -> None:
    queues = {"a": QueueState("a", weight=weights[0]), "b": QueueState("b", weight=weights[1])}
    lanes = lanes_of(jobs("a", 1000) + jobs("b", 1000))
    rooms = workers(n_workers)
    plan = plan_cycle(lanes, queues, rooms, rooms, "s")
    got = {"a": 0, "b": 0}
    for job_id, _ in plan.placed:
        got[job_id.split("-")[0]] += 1
    assert sum(got.values()) == 8 * n_workers  # the shard is full
    expected_a = 8 * n_workers * weights[0] / sum(weights)
    assert abs(got["a"] - expected_a) <= 1


def test_running_jobs_count_towards_the_share() -> None:
    queues = {"a": QueueState("a", running=6, cpu_milli=6000), "b": QueueState("b")}
    rooms = workers(1)  # 8 CPUs, 6 held by a: 2 free... both go to b
    totals = workers(1)
    free = [Room("w0", 2000, 26 * GI)]
    plan = plan_cycle(lanes_of(jobs("a", 5) + jobs("b", 5)), queues, free, totals, "s")
    assert [j for j, _ in plan.placed] == ["b-0", "b-1"]
    assert plan.reasons["a-0"].startswith("waiting for its fair share: queue a has 75% of shard s")
    assert rooms  # the totals are what the share is measured against


def test_a_queue_at_max_running_jobs_says_so() -> None:
    queues = {"ml": QueueState("ml", max_running_jobs=10, running=8)}
    plan = plan_cycle(lanes_of(jobs("ml", 5)), queues, workers(4), workers(4), "s")
    assert len(plan.placed) == 2
    assert plan.reasons["ml-2"] == "queue ml is at max_running_jobs 10"
    assert plan.reasons["ml-4"] == "queue ml is at max_running_jobs 10"


def test_max_resources_hold_a_job_back_and_let_a_smaller_one_pass() -> None:
    queues = {"ml": QueueState("ml", max_gpu=2, gpu=1)}
    lanes = lanes_of([*jobs("ml", 1, gpu=2), Demand("small", 1000, GI, 1, queue="ml")])
    rooms = workers(2, gpu=4)
    plan = plan_cycle(lanes, queues, rooms, rooms, "s")
    assert [j for j, _ in plan.placed] == ["small"]
    assert plan.reasons["ml-0"].startswith("queue ml is at max_resources gpu 2")


def test_higher_priority_classes_go_first_whatever_the_fair_share() -> None:
    queues = {"a": QueueState("a"), "b": QueueState("b", running=1, cpu_milli=1000)}
    lanes = lanes_of(jobs("a", 3) + jobs("b", 2, class_priority=100))
    free = [Room("w0", 2000, 32 * GI)]
    plan = plan_cycle(lanes, queues, free, workers(1), "s")
    assert [j for j, _ in plan.placed] == ["b-0", "b-1"]


def test_a_gang_is_placed_whole_across_workers_or_not_at_all() -> None:
    gang = [Demand(f"g{i}", 4000, GI, queue="a", gang="g", gang_size=3) for i in range(3)]
    rooms = workers(2)  # 8 + 8 CPUs: two members per worker
    plan = plan_cycle(lanes_of(gang), {}, rooms, rooms, "s", gangs={"g": gang})
    assert sorted(j for j, _ in plan.placed) == ["g0", "g1", "g2"]
    small = [Room("w0", 8000, 32 * GI)]  # room for two members only
    plan = plan_cycle(lanes_of(gang), {}, small, small, "s", gangs={"g": gang})
    assert plan.placed == []
    assert plan.reasons["g2"].startswith("gang g: shard s has no room for all 3 members")
    assert plan.free["w0"][0] == 8000  # nothing half-taken


def test_an_incomplete_gang_waits_and_says_how_many_members_are_there() -> None:
    gang = [Demand(f"g{i}", 1000, GI, queue="a", gang="g1", gang_size=4) for i in range(2)]
    plan = plan_cycle(lanes_of(gang), {}, workers(2), workers(2), "s", gangs={"g1": gang})
    assert plan.placed == []
    assert plan.reasons == {"g0": "gang g1 has 2 of 4 members", "g1": "gang g1 has 2 of 4 members"}


def test_a_closed_worker_takes_nothing() -> None:
    rooms = workers(2)
    plan = plan_cycle(lanes_of(jobs("a", 20)), {}, rooms, rooms, "s", closed=["w0"])
    assert {w for _, w in plan.placed} == {"w1"}


def test_placements_per_cycle_are_bounded_and_the_rest_wait_their_turn() -> None:
    rooms = workers(4)
    plan = plan_cycle(lanes_of(jobs("a", 20)), {}, rooms, rooms, "s", max_placements=5)
    assert len(plan.placed) == 5
    assert plan.reasons["a-5"].startswith("waiting its turn")


def test_too_large_jobs_say_why() -> None:
    rooms = workers(1, gpu=0)
    plan = plan_cycle(lanes_of(jobs("a", 1, gpu=2)), {}, rooms, rooms, "s")
    assert "no worker in shard s is large enough" in plan.reasons["a-0"]


def test_fitter_prefers_fewest_gpus_then_least_cpu() -> None:
    fit = Fitter([Room("gpu", 8000, 8 * GI, 4), Room("big", 8000, 8 * GI), Room("tight", 2000, GI)])
    assert fit.take(Demand("x", 2000, GI)) == "tight"
    assert fit.take(Demand("y", 2000, GI)) == "big"
    assert fit.take(Demand("z", 1000, GI, 1)) == "gpu"
    assert fit.take(Demand("huge", 9000, GI)) is None


def test_dominant_share_is_the_largest_fraction() -> None:
    from jobfleet.protocol import Capacity

    q = QueueState("a", cpu_milli=1000, memory=8 * GI, gpu=0)
    assert dominant_share(q, Capacity(4000, 16 * GI, 0)) == 0.5


def test_room_kept_for_a_preemptor_is_not_backfilled_by_a_lower_class() -> None:
    """Once a preemptor's victims have gone, their room waits for it, not for low jobs."""
    rooms = [Room("w0", 2000, 4 * GI)]
    low = jobs("a", 2, class_priority=0)
    plan = plan_cycle(lanes_of(low), {}, rooms, rooms, "s", reserved={"w0": 100})
    assert plan.placed == []
    urgent = jobs("b", 1, cpu=2000, class_priority=100)
    plan = plan_cycle(lanes_of(urgent + low), {}, rooms, rooms, "s", reserved={"w0": 100})
    assert plan.placed == [("b-0", "w0")]


def test_fitter_places_by_selector_and_avoids_a_worker_only_while_another_could_hold_it() -> None:
    rooms = [Room("plain", 4000, 4 * GI), Room("fast", 4000, 4 * GI, labels={"disk": "ssd"})]
    fit = Fitter(rooms, totals=rooms)
    assert fit.take(Demand("s", 1000, GI, selector={"disk": "ssd"})) == "fast"
    assert fit.take(Demand("t", 1000, GI, selector={"disk": "nvme"})) is None
    assert fit.take(Demand("u", 1000, GI, avoid=frozenset({"plain"}))) == "fast"
    only = [Room("plain", 4000, 4 * GI)]
    assert Fitter(only, totals=only).take(Demand("v", 1000, GI, avoid=frozenset({"plain"}))) == (
        "plain"
    )


# -- lanes read only in part -------------------------------------------------------------------


def test_a_class_whose_unread_jobs_may_come_next_ends_the_cycle_before_lower_classes() -> None:
    urgent = jobs("a", 2, class_priority=100)
    low = jobs("b", 4)
    plan = plan_cycle(lanes_of(urgent + low), {}, workers(1), workers(1), "s", unread=[(100, "a")])
    # Room for eight, but lane (100, a) has more urgent jobs than were read: they come first.
    assert [j for j, _ in plan.placed] == ["a-0", "a-1"]
    assert all(plan.reasons[d.job_id].startswith("waiting its turn") for d in low)
    whole = plan_cycle(lanes_of(urgent + low), {}, workers(1), workers(1), "s")
    assert len(whole.placed) == 6


def test_a_fair_share_turn_of_a_partly_read_queue_ends_the_cycle() -> None:
    a, b = jobs("a", 2), jobs("b", 6)
    plan = plan_cycle(lanes_of(a + b), {}, workers(1), workers(1), "s", unread=[(0, "a")])
    # Equal weights take turns: a, b, a, b, then a's turn with nothing read: stop there.
    assert sorted(j for j, _ in plan.placed) == ["a-0", "a-1", "b-0", "b-1"]


def test_a_partly_read_lane_that_places_nothing_does_not_hold_up_the_others() -> None:
    big = jobs("a", 3, cpu=64_000, class_priority=100)  # fits no worker now
    low = jobs("b", 3)
    plan = plan_cycle(lanes_of(big + low), {}, workers(1), workers(1), "s", unread=[(100, "a")])
    assert sorted(j for j, _ in plan.placed) == ["b-0", "b-1", "b-2"]


def test_an_array_gets_no_more_than_its_room_and_the_rest_say_why() -> None:
    array = [Demand(f"a-{i}", 1000, GI, queue="q", array="A") for i in range(5)]
    other = jobs("q", 2)
    plan = plan_cycle(lanes_of([*array, *other]), {}, workers(2), workers(2), "s", arrays={"A": 2})
    placed = {j for j, _ in plan.placed}
    assert placed == {"a-0", "a-1", "q-0", "q-1"}  # the queue goes on past the held elements
    for held in ("a-2", "a-3", "a-4"):
        assert "max_parallel" in plan.reasons[held]


def test_an_array_without_room_places_nothing_and_one_without_a_limit_is_free() -> None:
    full = [Demand(f"a-{i}", 1000, GI, queue="q", array="A") for i in range(3)]
    free = [Demand(f"b-{i}", 1000, GI, queue="q", array="B") for i in range(3)]
    plan = plan_cycle(lanes_of([*full, *free]), {}, workers(1), workers(1), "s", arrays={"A": 0})
    assert {j for j, _ in plan.placed} == {"b-0", "b-1", "b-2"}
    assert all("max_parallel" in plan.reasons[d.job_id] for d in full)
