"""`tmuxtrain events`: kinds named as hooks name them, filters by job and kind, and
`--follow` that starts at the end as `tail -f` does."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from typing import Any

from tests.conftest import Env


def add(tt: Env, *args: str) -> int:
    [job_id] = [int(x) for x in tt.cli("add", *args, check=True).stdout.split()]
    return job_id


def events(tt: Env, *args: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in tt.cli("events", *args, check=True).stdout.splitlines()]


def test_kinds_are_hook_names_and_filters_narrow_them(tt: Env) -> None:
    flaky = add(tt, "--gpus", "0", "--retries", "1", "--name", "flaky", "--", "exit 1")
    fine = add(tt, "--gpus", "0", "--name", "fine", "--", "echo loss=0.5")
    assert tt.cli("wait", str(flaky), str(fine), "--timeout", "30").returncode == 1
    mine = [e["kind"] for e in events(tt, "--job", "flaky") if e["kind"] != "metric"]
    assert mine == ["submitted", "started", "retrying", "started", "failed"]
    assert {e["job_id"] for e in events(tt, "--job", str(fine))} == {fine}
    ends = events(tt, "--kind", "succeeded,failed")
    assert sorted((e["job_id"], e["kind"]) for e in ends) == [
        (flaky, "failed"),
        (fine, "succeeded"),
    ]
    starts = events(tt, "--kind", "started", "--job", str(flaky))
    assert [e["kind"] for e in starts] == ["started", "started"]
    proc = tt.cli("events", "--kind", "finished")
    assert proc.returncode == 2
    assert "--kind: unknown kind 'finished'" in proc.stderr and "succeeded" in proc.stderr


def read_lines(proc: subprocess.Popen[str], want: int, timeout: float = 20) -> list[str]:
    """The first `want` lines `proc` prints, waiting at most `timeout` seconds."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < want:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(lines)} of {want} lines: {lines}"
        if select.select([proc.stdout], [], [], left)[0]:
            line = proc.stdout.readline()
            assert line, f"ended after {lines}"
            lines.append(line)
    return lines


def test_follow_starts_at_the_end_unless_since_says_otherwise(tt: Env) -> None:
    old = add(tt, "--no-start", "--name", "old", "--", "true")
    argv = [sys.executable, "-m", "tmuxtrain.cli", "events", "--follow"]
    tail = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=tt.environ)
    replay = subprocess.Popen(
        [*argv, "--since", "0"], stdout=subprocess.PIPE, text=True, env=tt.environ
    )
    try:
        [first] = read_lines(replay, 1)
        assert (json.loads(first)["job_id"], json.loads(first)["kind"]) == (old, "submitted")
        # `tail` shows what happens once it runs: add jobs until it shows one of them (when
        # it started is not known from outside), and never anything of the old job.
        assert tail.stdout is not None
        added = []
        deadline = time.monotonic() + 30
        while not select.select([tail.stdout], [], [], 0.3)[0]:
            assert time.monotonic() < deadline, "events --follow printed nothing new"
            added.append(add(tt, "--no-start", "--", "true"))
        ev = json.loads(tail.stdout.readline())
        assert ev["job_id"] in added and ev["kind"] == "submitted"
        lines = read_lines(replay, len(added))
        assert [json.loads(x)["job_id"] for x in lines] == added
    finally:
        for p in (tail, replay):
            p.kill()
            p.wait()
