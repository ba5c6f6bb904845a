"""tmuxtrain.patterns: a job's own patterns can never stall the scheduler (issue 14)."""

from __future__ import annotations

import time

import pytest

from tmuxtrain.core.metrics import LogParser
from tmuxtrain.patterns import AsciiPattern, bounded, bounded_metrics, check, search_any

EVIL = r"(?P<value>(1+)+)y"
EVIL_LINE = "loss " + "1" * 5000 + "x"


def test_a_pathological_pattern_returns_within_its_bound_and_is_disabled() -> None:
    rx = bounded(EVIL, timeout_s=0.05)
    t0 = time.monotonic()
    assert rx.search(EVIL_LINE) is None
    assert time.monotonic() - t0 < 1.0
    assert rx.disabled and rx.note is not None and "disabled" in rx.note
    t0 = time.monotonic()
    assert rx.search("111y") is None  # disabled for good: no second stall
    assert time.monotonic() - t0 < 0.01


def test_the_parser_keeps_reading_other_metrics_and_notes_the_pattern() -> None:
    custom = bounded_metrics({"loss": EVIL, "val_acc": r"val acc is (?P<value>[0-9.]+)"})
    p = LogParser(custom)
    data = f"step=1 lr=0.1\n{EVIL_LINE}\nval acc is 0.9\nstep=2 loss=0.5\n".encode()
    t0 = time.monotonic()
    samples = p.feed(data, 0.0)
    assert time.monotonic() - t0 < 2.0
    assert {s.name for s in samples} >= {"step", "lr", "val_acc", "loss"}
    assert p.latest["val_acc"] == 0.9
    assert p.latest["loss"] == 0.5  # the built-in reading, the job's pattern being off
    assert len(p.notes) == 1 and p.notes[0].startswith("metrics.loss: pattern")
    # the log moves on: later lines are read, quickly
    assert p.feed(b"step=3 loss=0.4\n" + EVIL_LINE.encode() + b"\n", 1.0)
    assert p.latest["step"] == 3


def test_bounded_patterns_read_like_re_ones() -> None:
    custom = {"val_acc": r"val acc is (?P<value>[0-9.]+)", "précision": r"précision (\d+\.\d+)"}
    compiled = bounded_metrics(custom)
    assert isinstance(compiled["val_acc"], AsciiPattern)  # pre-filters raw bytes
    assert not isinstance(compiled["précision"], AsciiPattern)  # every line is read
    lines = b"noise\nthe val acc is 91.5 today\n" + "précision 0.93\n".encode()
    assert LogParser(compiled).feed(lines, 0.0) == LogParser(custom).feed(lines, 0.0)


def test_retry_on_never_stalls() -> None:
    told: list[tuple[str, str]] = []
    tail = "Traceback ...\n" + "1" * 5000 + "x\nRuntimeError: CUDA out of memory.\n"
    t0 = time.monotonic()
    assert search_any(["(1+)+y", "CUDA out of memory"], tail, on_timeout=lambda *a: told.append(a))
    assert not search_any(["(1+)+y", "NCCL timeout"], tail)
    assert time.monotonic() - t0 < 2.0
    assert [p for p, _ in told] == ["(1+)+y"]
    assert not search_any(["(unclosed"], tail)  # invalid: no match, no exception


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(unclosed", "bad regular expression"),
        (EVIL, "backtracks without end"),
        (r"(a|aa)+$", "backtracks without end"),
    ],
)
def test_check_names_the_problem(pattern: str, problem: str) -> None:
    message = check(pattern)
    assert message is not None and problem in message


@pytest.mark.parametrize(
    "pattern",
    [
        r"val_acc[=: ]+(?P<value>[0-9.]+)",
        "CUDA out of memory",
        r"^epoch (\d+)",
        r"loss:\s*(?P<value>[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)",
    ],
)
def test_check_passes_sound_patterns_quickly(pattern: str) -> None:
    t0 = time.monotonic()
    assert check(pattern, group="value") is None or "group" in str(check(pattern, group="value"))
    assert check(pattern) is None
    assert time.monotonic() - t0 < 0.5


def test_check_wants_the_value_group_for_metrics() -> None:
    assert check(r"loss (\d+) (\d+)", group="value") is not None
    assert check(r"loss (\d+)", group="value") is None
    assert check(r"loss (?P<value>\d+)", group="value") is None


def test_the_retry_decision_takes_the_bounded_matcher() -> None:
    from tests.core.test_reconcile import NOW, job
    from tmuxtrain.core.model import JobState
    from tmuxtrain.core.reconcile import outcome

    j = job(retries=1, retry_on=("(1+)+y", "CUDA out of memory"))
    tail = "1" * 5000 + "x\nRuntimeError: CUDA out of memory.\n"
    t0 = time.monotonic()
    o = outcome(j, 1, tail, NOW, 1.0, matches=search_any)
    assert o.state is JobState.PENDING and time.monotonic() - t0 < 2.0
    o = outcome(j, 1, "1" * 5000 + "x\n", NOW, 1.0, matches=search_any)
    assert o.state is JobState.FAILED and "did not match retry_on" in o.reason
