"""The lifecycle core: the table, the actions, and its invariants under random operations."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jobfleet.errors import IllegalTransition
from jobfleet.lifecycle import (
    TERMINAL_JOB_STATES,
    EventType,
    JobState,
    Op,
    allowed_actions,
    legal_ops,
    transition,
)
from jobfleet.lifecycle.transitions import table


def test_happy_path_walks_through_every_running_state() -> None:
    state: JobState | None = None
    seen = []
    for op in (Op.ENQUEUE, Op.SCHEDULE, Op.LEASE, Op.START, Op.SUCCEED):
        step = transition(state, op)
        seen.append((step.target, step.event))
        state = step.target
    assert seen == [
        (JobState.QUEUED, EventType.QUEUED),
        (JobState.SCHEDULED, EventType.SCHEDULED),
        (JobState.LEASED, EventType.LEASED),
        (JobState.RUNNING, EventType.RUNNING),
        (JobState.SUCCEEDED, EventType.SUCCEEDED),
    ]


@pytest.mark.parametrize("state", [JobState.WAITING, JobState.QUEUED, JobState.SCHEDULED])
def test_cancel_before_a_run_is_immediate(state: JobState) -> None:
    step = transition(state, Op.CANCEL)
    assert step.target is JobState.CANCELLED
    assert step.event is EventType.CANCELLED


@pytest.mark.parametrize("state", [JobState.LEASED, JobState.RUNNING])
def test_cancel_of_a_running_job_is_requested_then_confirmed(state: JobState) -> None:
    step = transition(state, Op.CANCEL)
    assert (step.target, step.event, step.cancel_requested) == (
        state,
        EventType.CANCEL_REQUESTED,
        True,
    )
    with pytest.raises(IllegalTransition):
        transition(state, Op.CANCEL, cancel_requested=True)
    done = transition(state, Op.CONFIRM_CANCEL, cancel_requested=True)
    assert (done.target, done.event, done.cancel_requested) == (
        JobState.CANCELLED,
        EventType.CANCELLED,
        False,
    )


def test_confirm_cancel_needs_a_cancel_in_progress() -> None:
    with pytest.raises(IllegalTransition):
        transition(JobState.RUNNING, Op.CONFIRM_CANCEL)


@pytest.mark.parametrize("state", sorted(TERMINAL_JOB_STATES))
def test_terminal_states_refuse_everything(state: JobState) -> None:
    assert legal_ops(state) == []
    with pytest.raises(IllegalTransition) as info:
        transition(state, Op.CANCEL)
    assert info.value.state == state.value
    assert info.value.actions == ["retry"]
    assert "cannot cancel" in str(info.value)


def test_illegal_transition_names_state_and_allowed_actions() -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(JobState.QUEUED, Op.START)
    assert info.value.state == "QUEUED"
    assert info.value.actions == ["cancel", "reprioritize"]


def test_requeue_clears_a_cancel_flag_and_returns_to_queued() -> None:
    step = transition(JobState.RUNNING, Op.REQUEUE)
    assert (step.target, step.event) == (JobState.QUEUED, EventType.REQUEUED)


def test_actions_of_each_state() -> None:
    def enabled(state: JobState, flag: bool = False) -> list[str]:
        return [a.name for a in allowed_actions(state, cancel_requested=flag) if a.enabled]

    assert enabled(JobState.QUEUED) == ["cancel", "reprioritize"]
    assert enabled(JobState.RUNNING) == ["cancel", "reprioritize", "preempt"]
    assert enabled(JobState.RUNNING, True) == []
    assert [a.in_progress for a in allowed_actions(JobState.RUNNING, cancel_requested=True)] == [
        True,
        False,
        False,
        False,
    ]
    assert enabled(JobState.FAILED) == ["retry"]


def test_every_table_entry_targets_a_known_state_and_event() -> None:
    for (op, source), (target, event) in table().items():
        assert isinstance(op, Op)
        assert source is None or isinstance(source, JobState)
        assert target is None or isinstance(target, JobState)
        assert isinstance(event, EventType)
        assert source not in TERMINAL_JOB_STATES


class JobMachine(RuleBasedStateMachine):
    """Random operations: only legal moves happen, one event each, terminal is final."""

    def __init__(self) -> None:
        super().__init__()
        self.state: JobState | None = None
        self.flag = False
        self.events: list[EventType] = []
        self.moves = 0

    @rule(op=st.sampled_from(list(Op)))
    def apply(self, op: Op) -> None:
        before = (self.state, self.flag)
        legal = op in legal_ops(self.state, cancel_requested=self.flag)
        try:
            step = transition(self.state, op, cancel_requested=self.flag)
        except IllegalTransition:
            assert not legal
            assert (self.state, self.flag) == before
            return
        assert legal
        assert before[0] is None or not before[0].terminal
        self.state, self.flag = step.target, step.cancel_requested
        self.events.append(step.event)
        self.moves += 1

    @precondition(lambda self: self.state is not None and self.state.terminal)
    @rule()
    def terminal_is_final(self) -> None:
        assert self.state is not None
        assert legal_ops(self.state, cancel_requested=self.flag) == []

    @invariant()
    def one_event_per_transition(self) -> None:
        assert len(self.events) == self.moves

    @invariant()
    def flag_only_while_a_worker_holds_the_job(self) -> None:
        if self.flag:
            assert self.state in (JobState.LEASED, JobState.RUNNING)


TestJobMachine = JobMachine.TestCase
