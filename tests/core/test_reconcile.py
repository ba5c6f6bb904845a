"""What really happened to running jobs, what an ended attempt means, and cancel escalation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmuxtrain.core.model import Job, JobSpec, JobState
from tmuxtrain.core.reconcile import (
    Ended,
    Outcome,
    PaneInfo,
    escalation,
    outcome,
    reconcile,
    timed_out,
)

NOW = 1_000_000.0


def job(
    id: int = 1,
    *,
    retries: int = 0,
    retry_on: tuple[str, ...] = (),
    timeout_s: float | None = None,
    **kw: object,
) -> Job:
    spec = JobSpec(
        name=f"job{id}",
        command="true",
        cwd="/",
        retries=retries,
        retry_on=retry_on,
        timeout_s=timeout_s,
    )
    kw.setdefault("state", JobState.RUNNING)
    kw.setdefault("tmux_pane", f"%{id}")
    kw.setdefault("pid", 4000 + id)
    return Job(id=id, spec=spec, **kw)  # type: ignore[arg-type]


def pane(
    id: int = 1,
    *,
    dead: bool = False,
    status: int | None = None,
    signal: int | None = None,
) -> PaneInfo:
    return PaneInfo(f"%{id}", f"@{id}", dead, status, signal, 4000 + id)


def panes(*ps: PaneInfo) -> dict[str, PaneInfo]:
    return {p.pane_id: p for p in ps}


# ---- reconcile -----------------------------------------------------------------------------


def test_recorded_exit_code_wins() -> None:
    # The wrapper's durable record beats a dead pane's status and a live process.
    ended = reconcile([job()], panes(pane(dead=True, signal=9)), {1: 3}, {1: True})
    assert ended == [Ended(1, 3)]
    assert reconcile([job()], {}, {1: 0}, {}) == [Ended(1, 0)]


def test_dead_pane_with_signal() -> None:
    [e] = reconcile([job()], panes(pane(dead=True, signal=15)), {}, {})
    assert (e.job_id, e.exit_code) == (1, 143)
    assert "signal 15" in e.note


def test_dead_pane_with_status() -> None:
    [e] = reconcile([job()], panes(pane(dead=True, status=2)), {}, {})
    assert (e.job_id, e.exit_code) == (1, 2)
    [e] = reconcile([job()], panes(pane(dead=True, status=0)), {}, {})
    assert e.exit_code == 0


def test_alive_process_or_live_pane_is_still_running() -> None:
    assert reconcile([job()], panes(pane()), {}, {1: True}) == []
    # Window gone but the process still runs: adopt, do not end.
    assert reconcile([job()], {}, {}, {1: True}) == []
    # A live pane: the wrapper will record the status, so it is not ended yet.
    assert reconcile([job()], panes(pane()), {}, {}) == []


def test_nothing_alive_is_lost() -> None:
    [e] = reconcile([job()], {}, {}, {1: False})
    assert e == Ended(1, None, e.note, clean=False)  # what it left must be ended first
    assert "lost" in e.note
    [e] = reconcile([job()], {}, {}, {})
    assert e.exit_code is None


def test_reused_pane_id_is_not_the_jobs_pane() -> None:
    # A new tmux server gave %1 to another process: neither its life nor death is the job's.
    other = PaneInfo("%1", "@1", False, None, None, 99999)
    [e] = reconcile([job()], panes(other), {}, {})
    assert e.exit_code is None
    dead_other = PaneInfo("%1", "@1", True, 0, None, 99999)
    [e] = reconcile([job()], panes(dead_other), {}, {})
    assert e.exit_code is None
    assert reconcile([job()], panes(dead_other), {}, {1: True}) == []


def test_launched_without_pid_yet_is_left_alone() -> None:
    assert reconcile([job(pid=None)], panes(pane()), {}, {}) == []
    # ... but not when its window is gone too.
    [e] = reconcile([job(pid=None)], {}, {}, {})
    assert e.exit_code is None


def test_reconcile_many() -> None:
    jobs = [job(1), job(2), job(3), job(4), job(5)]
    ended = reconcile(
        jobs,
        panes(pane(1), pane(2, dead=True, status=1), pane(5, dead=True, signal=2)),
        {4: 0},
        {1: True, 3: False},
    )
    assert [(e.job_id, e.exit_code) for e in ended] == [(2, 1), (3, None), (4, 0), (5, 130)]


# ---- outcome -------------------------------------------------------------------------------


def test_success() -> None:
    assert outcome(job(), 0, "", NOW, 5.0) == Outcome(JobState.SUCCEEDED, "")


def test_failure_without_retries() -> None:
    o = outcome(job(), 3, "", NOW, 5.0)
    assert o == Outcome(JobState.FAILED, "exit code 3")


@pytest.mark.parametrize(("attempt", "delay"), [(1, 5.0), (2, 10.0), (3, 20.0)])
def test_failure_with_retries_left_backs_off(attempt: int, delay: float) -> None:
    o = outcome(job(retries=3, attempt=attempt), 1, "", NOW, 5.0)
    assert o.state is JobState.PENDING
    assert o.not_before == NOW + delay
    assert "retrying" in o.reason


def test_retries_run_out() -> None:
    o = outcome(job(retries=2, attempt=3), 1, "", NOW, 5.0)
    assert o.state is JobState.FAILED
    assert o.not_before is None


def test_retry_on_matching_and_not() -> None:
    j = job(retries=1, retry_on=("CUDA out of memory", r"NCCL error \d+"))
    o = outcome(j, 1, "step 10\nRuntimeError: CUDA out of memory. Tried", NOW, 5.0)
    assert (o.state, o.not_before) == (JobState.PENDING, NOW + 5.0)
    assert outcome(j, 1, "NCCL error 42", NOW, 5.0).state is JobState.PENDING
    o = outcome(j, 1, "ValueError: bad config", NOW, 5.0)
    assert o.state is JobState.FAILED
    assert "did not match retry_on" in o.reason


def test_a_lost_attempt_is_a_failure_retried_while_retries_remain() -> None:
    o = outcome(job(retries=1), None, "", NOW, 5.0, note="lost: gone")
    assert o == Outcome(JobState.PENDING, "lost: gone; retrying", NOW + 5.0)
    o = outcome(job(retries=1, attempt=2), None, "", NOW, 5.0, note="lost: gone")
    assert o == Outcome(JobState.FAILED, "lost: gone")
    assert outcome(job(), None, "", NOW, 5.0, note="lost").state is JobState.FAILED


def test_retry_on_does_not_judge_a_lost_attempt() -> None:
    """Its log cannot say why it ended (tmux died, its window was closed)."""
    j = job(retries=1, retry_on=("CUDA out of memory",))
    assert outcome(j, None, "nothing matching", NOW, 5.0).state is JobState.PENDING


def test_cancelled_stays_cancelled_even_with_exit_zero() -> None:
    j = job(retries=3, cancel_requested_at=NOW - 1, cancel_reason="cancelled by user")
    assert outcome(j, 0, "", NOW, 5.0) == Outcome(JobState.CANCELLED, "cancelled by user")
    assert outcome(j, 1, "", NOW, 5.0).state is JobState.CANCELLED
    assert outcome(j, None, "", NOW, 5.0).state is JobState.CANCELLED
    j = job(cancel_requested_at=NOW - 1)
    assert outcome(j, 0, "", NOW, 5.0) == Outcome(JobState.CANCELLED, "cancelled")


def test_timeout_fails_or_retries_not_cancelled() -> None:
    kw: dict[str, Any] = {"cancel_requested_at": NOW - 1, "cancel_reason": "timeout after 1h"}
    o = outcome(job(**kw), 0, "", NOW, 5.0)  # even a clean exit after the kill is no success
    assert o == Outcome(JobState.FAILED, "timeout after 1h")
    o = outcome(job(retries=1, **kw), 130, "", NOW, 5.0)
    assert (o.state, o.not_before) == (JobState.PENDING, NOW + 5.0)
    assert o.reason.startswith("timeout after 1h")


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 6),
    retries=st.integers(0, 6),
    code=st.one_of(st.none(), st.integers(0, 255)),
    backoff=st.floats(0, 60),
)
def test_outcome_properties(attempt: int, retries: int, code: int | None, backoff: float) -> None:
    o = outcome(job(retries=retries, attempt=attempt), code, "", NOW, backoff)
    if code == 0:
        assert o.state is JobState.SUCCEEDED
    elif attempt > retries:
        assert o.state is JobState.FAILED
        assert o.not_before is None
    else:
        assert o.state is JobState.PENDING
        assert o.not_before == pytest.approx(NOW + backoff * 2 ** (attempt - 1))


# ---- escalation and timeouts ---------------------------------------------------------------


def test_escalation() -> None:
    j = job(cancel_requested_at=NOW)
    assert escalation(job(), NOW + 100, 10.0) is None  # no cancel requested
    assert escalation(j, NOW, 10.0) is None
    assert escalation(j, NOW + 4.99, 10.0) is None
    assert escalation(j, NOW + 5.0, 10.0) == "term"
    assert escalation(j, NOW + 9.99, 10.0) == "term"
    assert escalation(j, NOW + 10.0, 10.0) == "kill"
    assert escalation(j, NOW + 1000, 10.0) == "kill"


def test_timed_out() -> None:
    j = job(timeout_s=60.0, started_at=NOW)
    assert not timed_out(j, NOW + 60)
    assert timed_out(j, NOW + 60.01)
    assert not timed_out(job(timeout_s=None, started_at=NOW), NOW + 10**6)
    assert not timed_out(job(timeout_s=60.0, started_at=None), NOW + 10**6)
    # Once cancelling (for the timeout or otherwise), it is not timed out again.
    assert not timed_out(
        job(timeout_s=60.0, started_at=NOW, cancel_requested_at=NOW + 61), NOW + 99
    )


def test_a_dead_pane_without_status_waits_one_pass() -> None:
    from tmuxtrain.core.reconcile import dead_without_status

    snapshot = panes(pane(dead=True))
    assert reconcile([job()], snapshot, {}, {}) == []  # tmux has not got the status yet
    seen = dead_without_status(snapshot)
    assert seen == {"%1"}
    [e] = reconcile([job()], snapshot, {}, {}, seen)
    assert e.exit_code is None and "no exit status" in e.note
