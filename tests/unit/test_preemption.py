"""Preemption by priority class (pure): fewest, least urgent victims on one worker."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobfleet.scheduling.placement import Demand
from jobfleet.scheduling.preemption import (
    Running,
    choose_eviction,
    plan_preemptions,
    victims_on_worker,
)

GI = 2**30
URGENT = Demand("urgent", 4000, 4 * GI, class_priority=100)


def run(job: str, cpu: int, cls: int = 0, prio: int = 0, **kw: object) -> Running:
    return Running(job, kw.pop("worker", "w"), cpu, GI, class_priority=cls, priority=prio, **kw)  # type: ignore[arg-type]


def test_fewest_victims_win_over_many_small_ones() -> None:
    running = [run("s1", 1000), run("s2", 1000), run("s3", 1000), run("s4", 1000), run("big", 4000)]
    victims, waiting = victims_on_worker(URGENT, (0, 8 * GI, 0), running) or ([], 0)
    assert [v.job_id for v in victims] == ["big"] and waiting == 1


def test_lowest_priority_victims_first_among_equals() -> None:
    running = [run("p5", 4000, prio=5), run("p1", 4000, prio=1), run("c50", 4000, cls=50)]
    victims, _ = victims_on_worker(URGENT, (0, 8 * GI, 0), running) or ([], 0)
    assert [v.job_id for v in victims] == ["p1"]


def test_never_a_non_preemptible_job_nor_an_equal_or_higher_class() -> None:
    running = [
        run("fixed", 4000, preemptible=False),
        run("peer", 4000, cls=100),
        run("boss", 4000, cls=200),
    ]
    assert victims_on_worker(URGENT, (0, 8 * GI, 0), running) is None


def test_victims_all_on_one_worker() -> None:
    # 2 CPUs could be freed on each worker; the job needs 4 on one: nobody is evicted.
    by_worker = {
        "w1": [run("a", 2000, worker="w1")],
        "w2": [run("b", 2000, worker="w2")],
    }
    assert choose_eviction(URGENT, {"w1": (0, 8 * GI, 0), "w2": (0, 8 * GI, 0)}, by_worker) is None


def test_free_room_counts_so_fewer_victims_are_needed() -> None:
    by_worker = {"w1": [run("a", 2000), run("b", 2000)], "w2": [run("c", 2000), run("d", 2000)]}
    ev = choose_eviction(URGENT, {"w1": (0, 8 * GI, 0), "w2": (2000, 8 * GI, 0)}, by_worker)
    assert ev is not None and ev.worker == "w2" and len(ev.victims) == 1


def test_a_preemption_in_progress_is_waited_for_not_repeated() -> None:
    running = [run("going", 4000, stopping=True), run("other", 4000)]
    assert victims_on_worker(URGENT, (0, 8 * GI, 0), running) == ([], 1)


def test_a_worker_serves_one_preemptor_per_cycle_and_gangs_do_not_preempt() -> None:
    by_worker = {"w": [run("a", 4000), run("b", 4000)]}
    second = Demand("urgent2", 4000, GI, class_priority=100)
    gang = Demand("g", 1000, GI, class_priority=100, gang="g", gang_size=2)
    plan = plan_preemptions([gang, URGENT, second], {"w": (0, 8 * GI, 0)}, by_worker)
    assert list(plan) == ["urgent"]


def test_nothing_preempts_a_job_of_its_own_class() -> None:
    plan = plan_preemptions([Demand("x", 4000, GI)], {"w": (0, GI, 0)}, {"w": [run("a", 4000)]})
    assert plan == {}


@st.composite
def worker_jobs(draw: st.DrawFn) -> list[Running]:
    return [
        run(
            f"r{i}",
            draw(st.integers(1, 8)) * 500,
            cls=draw(st.sampled_from([0, 50, 100, 200])),
            prio=draw(st.integers(0, 3)),
            preemptible=draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 16)))
    ]


@settings(max_examples=300, deadline=None)
@given(worker_jobs(), st.integers(0, 4000))
def test_victims_are_allowed_sufficient_and_minimal(running: list[Running], free: int) -> None:
    found = victims_on_worker(URGENT, (free, 8 * GI, 0), running)
    if found is None:
        eligible = [r for r in running if r.preemptible and r.class_priority < 100]
        assert free + sum(r.cpu_milli for r in eligible) < URGENT.cpu_milli
        return
    victims, _ = found
    assert all(v.preemptible and v.class_priority < 100 for v in victims)
    freed = free + sum(v.cpu_milli for v in victims)
    assert freed >= URGENT.cpu_milli
    for v in victims:  # none of them could be spared
        assert freed - v.cpu_milli < URGENT.cpu_milli or len(victims) > 12
