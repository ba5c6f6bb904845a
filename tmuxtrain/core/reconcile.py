"""Database rows + what tmux and the process table show -> what really happened to jobs.

Run on every scheduler start and every tick. A job is alive when its process is (checked by
pid *and* start time, so a reused pid is never taken for the job), not when its window is.
Jobs whose fate cannot be known are marked lost (failed), never silently run again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tmuxtrain.core.model import PREEMPTED, Job, JobState


@dataclass(frozen=True)
class PaneInfo:
    """One tmux pane, as `list-panes -a -F` reports it."""

    pane_id: str
    window_id: str
    dead: bool
    dead_status: int | None  # exit status when it exited normally
    dead_signal: int | None  # signal number when it was killed
    pid: int | None


@dataclass(frozen=True)
class Ended:
    """An attempt that ended; `clean` when its wrapper ended by itself (it recorded or
    returned the status), not when it was killed or lost with what it started."""

    job_id: int
    exit_code: int | None  # None: unknown (lost)
    note: str = ""
    clean: bool = True


def reconcile(
    running: Sequence[Job],
    panes: Mapping[str, PaneInfo],
    exit_codes: Mapping[int, int],
    alive: Mapping[int, bool],
    seen_dead: frozenset[str] = frozenset(),
) -> list[Ended]:
    """Which running jobs have ended, and with what exit code.

    tmux marks a pane dead when its terminal closes, a moment before it has the exit status;
    such a pane is left for a later pass, and only one that has stayed without a status (its
    id in `seen_dead`: the caller tracks `dead_without_status` over time) ends with an
    unknown code.

    `exit_codes` are the statuses the wrapper recorded (durable, so they win); `alive` tells
    whether the job's wrapper process still runs (pid and start time match). A live pane
    means the job runs (its wrapper may be exiting this instant); a pane that died without a
    recorded status was killed (its wrapper too); a job with neither pane nor process nor
    status is lost. Callers should read the status files after the pane/process snapshot.
    """
    out = []
    for job in running:
        if job.id in exit_codes:
            out.append(Ended(job.id, exit_codes[job.id]))
            continue
        pane = panes.get(job.tmux_pane or "")
        if pane is not None and job.pid is not None and pane.pid != job.pid:
            pane = None  # a new tmux server reused the pane id: not our job's pane
        if pane is not None and pane.dead:
            if pane.dead_signal:
                code = 128 + pane.dead_signal
                out.append(Ended(job.id, code, f"killed by signal {pane.dead_signal}", False))
            elif pane.dead_status is not None:
                out.append(Ended(job.id, pane.dead_status, "exit status from tmux"))
            elif pane.pane_id in seen_dead:
                note = "its window died and tmux gave no exit status"
                out.append(Ended(job.id, None, note, False))
            continue
        if pane is not None or alive.get(job.id):
            continue  # its pane lives (the wrapper records the status), or its process does
        note = "lost: its window closed before it recorded an exit status"
        out.append(Ended(job.id, None, note, False))
    return out


def dead_without_status(panes: Mapping[str, PaneInfo]) -> frozenset[str]:
    """Panes tmux shows dead but without an exit status yet (see `reconcile`)."""
    return frozenset(
        p.pane_id for p in panes.values() if p.dead and p.dead_status is None and not p.dead_signal
    )


@dataclass(frozen=True)
class Outcome:
    state: JobState
    reason: str
    not_before: float | None = None


def outcome(
    job: Job,
    exit_code: int | None,
    log_tail: str,
    now: float,
    backoff_s: float,
    *,
    note: str = "",
    matches: Callable[[Sequence[str], str], bool] | None = None,
) -> Outcome:
    """What an ended attempt means: succeeded, cancelled, retried (pending, later) or failed.

    A cancelled job stays cancelled whatever its exit code. A failure is retried while
    attempts remain and, when `retry_on` is given, only if the log tail matches one of its
    patterns; the backoff doubles per attempt. `matches(patterns, text)` judges `retry_on`:
    the scheduler passes `tmuxtrain.patterns.search_any`, which is time-bounded (a job's
    pattern can backtrack without end, and `re` cannot be stopped); plain `re` otherwise.
    A lost attempt (exit code None: its window or tmux died before it recorded a status)
    counts as a failure and is retried while attempts remain, whatever `retry_on` says:
    its log cannot tell why it ended. A preempted attempt goes back to pending at once,
    whatever its exit code, and uses up no retry (`job.restarts` counts those).
    """
    if job.cancel_requested_at is not None and job.cancel_reason.startswith(PREEMPTED):
        return Outcome(JobState.PENDING, job.cancel_reason, now)
    if job.cancel_requested_at is not None and not job.cancel_reason.startswith("timeout"):
        return Outcome(JobState.CANCELLED, job.cancel_reason or "cancelled")
    if exit_code == 0 and not job.cancel_reason:
        return Outcome(JobState.SUCCEEDED, "")
    why = job.cancel_reason or note or f"exit code {exit_code}"
    tries = job.attempt - job.restarts  # attempts that ran to their own end
    if tries <= job.spec.retries:
        match = matches or _search_any
        if exit_code is None or not job.spec.retry_on or match(job.spec.retry_on, log_tail):
            delay = backoff_s * math.pow(2, tries - 1)
            return Outcome(JobState.PENDING, f"{why}; retrying", now + delay)
        why += " (log did not match retry_on)"
    return Outcome(JobState.FAILED, why)


def _search_any(patterns: Sequence[str], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


def attempt_fields(
    attempt: int, *, not_before: float | None = None, reason: str = ""
) -> dict[str, Any]:
    """The columns a job gets when it goes back to pending for `attempt` (the next one, or
    the same one when it never ran): everything an attempt set is cleared. Its last window
    stays recorded until the next attempt starts, for reading."""
    return {
        "attempt": attempt,
        "not_before": not_before,
        "reason": reason,
        "gpus": (),
        "started_at": None,
        "finished_at": None,
        "cancel_requested_at": None,
        "cancel_reason": "",
        "pid": None,
        "pid_start": None,
        "pid_boot": None,
        "master_port": None,
        "queued": False,
        "external_id": None,
    }


def escalation(job: Job, now: float, grace_s: float) -> str | None:
    """The next step of cancelling a running job: Ctrl-C was sent at request time; after half
    the grace period SIGTERM to the process tree, after the whole of it SIGKILL."""
    if job.cancel_requested_at is None:
        return None
    waited = now - job.cancel_requested_at
    if waited >= grace_s:
        return "kill"
    if waited >= grace_s / 2:
        return "term"
    return None


def timed_out(job: Job, now: float) -> bool:
    return (
        job.spec.timeout_s is not None
        and job.started_at is not None
        and job.cancel_requested_at is None
        and now - job.started_at > job.spec.timeout_s
    )
