"""Queue control through the command line: holding jobs from the start, editing a waiting
job in place, rerunning a succeeded one, cancelling idempotently, and confirmations that a
person at a terminal reads (and a script never sees)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import Env, wait_until
from tests.terminal import on_terminal
from tmuxtrain.core.spec import JOB_KEYS

# `hold:` in job files (and so `add --hold`) is validated by core/spec.py, which the issue's
# scheduler-core part adds; these tests run as soon as it is there.
needs_hold_key = pytest.mark.skipif(
    "hold" not in JOB_KEYS, reason="core/spec.py does not validate `hold:` yet"
)


def add(tt: Env, *args: str) -> int:
    [job_id] = [int(x) for x in tt.cli("add", *args, check=True).stdout.split()]
    return job_id


def show(tt: Env, ref: int | str) -> dict[str, object]:
    out: dict[str, object] = json.loads(tt.cli("show", str(ref), "--json", check=True).stdout)
    return out


def kinds(tt: Env, job_id: int) -> list[str]:
    events = tt.client().events()
    return [e["kind"] for e in events if e["job_id"] == job_id and e["kind"] != "metric"]


@needs_hold_key
def test_add_hold_queues_held_until_release(tt: Env) -> None:
    a = add(tt, "--hold", "--gpus", "0", "--", "true")
    assert show(tt, a)["held"] is True and str(show(tt, a)["reason"]).startswith("held")
    wait_until(lambda: tt.client().scheduler_running(), what="the scheduler, started by add")
    b = add(tt, "--gpus", "0", "--", "true")  # the scheduler is up and starts what it may
    assert tt.cli("wait", str(b), "--timeout", "20").returncode == 0
    assert show(tt, a)["state"] == "pending"
    tt.cli("release", str(a), check=True)
    assert tt.cli("wait", str(a), "--timeout", "20").returncode == 0
    assert kinds(tt, a) == ["submitted", "released", "started", "succeeded"]


@needs_hold_key
def test_hold_true_in_a_job_file_queues_held(tt: Env) -> None:
    tt.write("held.yaml", "name: later\ncommand: 'true'\ngpus: 0\nhold: true\n")
    [a] = json.loads(tt.cli("add", "--no-start", "--json", "held.yaml", check=True).stdout)
    assert show(tt, a)["held"] is True


def test_hold_and_release_record_events_and_say_so_on_a_terminal(tt: Env) -> None:
    a = add(tt, "--no-start", "--name", "waiter", "--", "true")
    shown = on_terminal(tt.environ, "hold", str(a), cwd=tt.root)
    assert (shown.returncode, shown.stdout.strip()) == (0, f"job {a} (waiter) held")
    again = on_terminal(tt.environ, "hold", str(a), cwd=tt.root)
    assert again.returncode == 0 and f"job {a} already held" in again.stderr
    shown = on_terminal(tt.environ, "release", "waiter", cwd=tt.root)
    assert shown.stdout.strip() == f"job {a} (waiter) released"
    piped = tt.cli("hold", str(a), check=True)  # a script sees nothing but the status
    assert piped.stdout == "" and piped.stderr == ""
    assert kinds(tt, a) == ["submitted", "held", "released", "held"]
    shown = on_terminal(tt.environ, "priority", str(a), "7", cwd=tt.root)
    assert shown.stdout.strip() == f"job {a} (waiter) priority 0 -> 7"
    assert show(tt, a)["priority"] == 7 and show(tt, a)["held"] is True


def test_edit_changes_a_waiting_job_in_place_and_it_runs_so(tt: Env) -> None:
    a = add(tt, "--no-start", "--name", "train", "--vram", "10GiB", "--", "echo old")
    b = add(tt, "--no-start", "--after", "train", "--gpus", "0", "--", "true")
    proc = tt.cli(
        "edit", str(a), "--vram", "20GiB", "--priority", "3", "--name", "train-v2",
        "--env", "MSG=hello {x}", "--timeout", "1h", "--json",
        "--", "echo new:$MSG",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    changes = json.loads(proc.stdout)
    assert changes["vram"] == ["10 GiB", "20 GiB"] and changes["priority"] == [0, 3]
    assert changes["name"] == ["train", "train-v2"] and changes["timeout"] == ["none", "1h00m"]
    assert changes["command"] == ["echo old", "echo new:$MSG"]
    job = show(tt, a)
    assert (job["id"], job["name"], job["vram_mib"], job["priority"]) == (a, "train-v2", 20480, 3)
    assert job["timeout_s"] == 3600 and job["env"] == {"MSG": "hello {x}"}
    assert show(tt, b)["after"] == [a]  # the dependent still follows the same id
    assert kinds(tt, a) == ["submitted", "edited"]
    # the job runs as edited, and its dependent after it
    tt.cli("up", check=True)
    assert tt.cli("wait", str(a), str(b), "--timeout", "30").returncode == 0
    assert "new:hello {x}" in tt.cli("log", str(a), check=True).stdout
    # finished now: no more edits
    proc = tt.cli("edit", str(a), "--priority", "1")
    assert proc.returncode == 2 and "only pending or held jobs can be edited" in proc.stderr


def test_edit_validates_like_a_job_file_and_refuses_cycles(tt: Env) -> None:
    a = add(tt, "--no-start", "--name", "first", "--", "true")
    b = add(tt, "--no-start", "--name", "second", "--after", "first", "--", "true")
    c = add(tt, "--no-start", "--name", "third", "--", "true")
    cases = [
        (["--vram", "20 apples"], "--vram: bad size"),
        (["--gpus", "-1"], "--gpus:"),
        (["--timeout", "soon"], "--timeout:"),
        (["--env", "1BAD=x"], "--env 1BAD: not a valid variable name"),
        (["--after", "second"], f"--after: job {a} would wait for itself"),
        (["--after", "nobody"], "--after: no job named 'nobody'"),
        ([], "nothing to change"),
    ]
    for args, needle in cases:
        proc = tt.cli("edit", str(a), *args)
        assert proc.returncode == 2 and needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert show(tt, a)["after"] == [] and kinds(tt, a) == ["submitted"]
    # --after replaces the dependencies; names resolve as `add` resolves them
    tt.cli("edit", str(b), "--after", f"third,{a}", check=True)
    assert show(tt, b)["after"] == [c, a]
    tt.cli("edit", str(b), "--after", "none", check=True)
    assert show(tt, b)["after"] == []
    # gpus 0 drops the VRAM request; 'exclusive' asks for whole GPUs again
    tt.cli("edit", str(c), "--vram", "4GiB", check=True)
    tt.cli("edit", str(c), "--gpus", "0", check=True)
    assert (show(tt, c)["gpus_requested"], show(tt, c)["vram_mib"]) == (0, None)
    tt.cli("edit", str(c), "--gpus", "1", "--vram", "4GiB", check=True)
    tt.cli("edit", str(c), "--vram", "exclusive", check=True)
    assert show(tt, c)["vram_mib"] is None


def test_retry_reruns_a_succeeded_job_as_its_next_attempt(tt: Env) -> None:
    a = add(tt, "--gpus", "0", "--", "echo ran")
    assert tt.cli("wait", str(a), "--timeout", "20").returncode == 0
    proc = tt.cli("retry", str(a), check=True)
    assert proc.stdout.strip() == str(a)  # scripts: the id, as before
    assert tt.cli("wait", str(a), "--timeout", "20").returncode == 0
    job = show(tt, a)
    assert (job["state"], job["attempt"]) == ("succeeded", 2)
    assert [at["attempt"] for at in job["attempts"]] == [1, 2]  # type: ignore[attr-defined]
    assert kinds(tt, a) == [
        "submitted", "started", "succeeded", "resubmitted", "started", "succeeded",
    ]  # fmt: skip
    shown = on_terminal(tt.environ, "retry", str(a), cwd=tt.root)
    assert shown.stdout.strip() == f"job {a} (echo) queued again as attempt 3"
    assert tt.cli("wait", str(a), "--timeout", "20").returncode == 0


def test_cancel_of_a_finished_job_is_a_note_and_exit_0(tt: Env) -> None:
    a = add(tt, "--gpus", "0", "--name", "quick", "--", "true")
    assert tt.cli("wait", str(a), "--timeout", "20").returncode == 0
    b = add(tt, "--gpus", "0", "--name", "long", "--", "sleep 30")
    c = add(tt, "--no-start", "--gpus", "0", "--after", "long", "--", "true")
    wait_until(lambda: show(tt, b)["state"] == "running", what="job b running")
    # c before b: once b has stopped, the scheduler cancels c itself (its dependency)
    shown = on_terminal(tt.environ, "cancel", str(a), str(c), str(b), cwd=tt.root)
    assert shown.returncode == 0
    assert shown.stdout.splitlines() == [
        f"job {c} (true) cancelled; it had not started",
        f"job {b} (long) stopping: Ctrl-C now, then SIGTERM and SIGKILL",
    ]
    assert shown.stderr.strip() == f"tmuxtrain cancel: job {a} already succeeded; nothing to cancel"
    wait_until(lambda: show(tt, b)["state"] == "cancelled", what="job b cancelled")
    again: subprocess.CompletedProcess[str] = tt.cli("cancel", str(a), str(b), str(c))
    assert again.returncode == 0 and again.stdout == ""  # idempotent cleanup scripts
    assert again.stderr.count("nothing to cancel") == 3
    assert tt.cli("cancel", "42").returncode == 2  # an id that never was: still a mistake
