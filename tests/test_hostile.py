"""A shared machine: a folder where someone else planted modules, a state folder that is
not ours, and the times recorded while the scheduler was away."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Env, wait_until
from tests.test_scheduler import add, job, wait_state

TMUXTRAIN = os.path.join(os.path.dirname(sys.executable), "tmuxtrain")


def test_modules_planted_where_add_runs_never_load_into_the_scheduler(tt: Env) -> None:
    planted = tt.root / "shared"
    (planted / "tmuxtrain").mkdir(parents=True)
    marks = tt.root / "marks"
    marks.mkdir()
    for module in ("psutil.py", "yaml.py", "tmuxtrain/__init__.py"):
        name = module.split("/")[0].removesuffix(".py")
        (planted / module).write_text(f"open({str(marks / name)!r}, 'w').close()\n")
    # The installed command, as a user runs it (`python -m` would put the folder first
    # on the CLI's own path, which is that user's choice, not the scheduler's).
    proc = subprocess.run(
        [TMUXTRAIN, "add", "--gpus", "0", "--", "true"],
        cwd=planted,
        env=tt.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    [a] = [int(x) for x in proc.stdout.split()]
    wait_state(tt, a, "succeeded")
    assert tt.client().status()["scheduler"]["running"]
    assert sorted(p.name for p in marks.iterdir()) == []


def test_an_existing_state_folder_keeps_its_mode(tt: Env) -> None:
    home = tt.root / "shared-home"
    home.mkdir(mode=0o750)
    os.chmod(home, 0o750)
    tt.set("TMUXTRAIN_HOME", str(home))
    add(tt, "--no-start", "--gpus", "0", "--", "true")
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    fresh = tt.root / "fresh" / "home"
    tt.set("TMUXTRAIN_HOME", str(fresh))
    add(tt, "--no-start", "--gpus", "0", "--", "true")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700  # made here: private


def test_a_state_folder_of_another_user_is_refused(tt: Env) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a folder another user owns")
    home = tt.root / "theirs"
    home.mkdir()
    shutil.chown(home, "nobody")
    tt.set("TMUXTRAIN_HOME", str(home))
    proc = tt.cli("add", "--no-start", "--gpus", "0", "--", "true")
    assert proc.returncode == 2 and "belongs to another user" in proc.stderr
    assert list(home.iterdir()) == []


def test_the_end_time_is_the_one_the_wrapper_saw(tt: Env) -> None:
    [a] = add(tt, "--gpus", "0", "--", "sleep 1")
    wait_state(tt, a, "running")
    tt.cli("down", check=True)
    log = Path(job(tt, a)["log_path"])
    wait_until(lambda: "exited with status 0" in log.read_text(), what="the job's end")
    time.sleep(3)  # the scheduler stays away a while after the job ended
    tt.cli("up", check=True)
    ja = wait_state(tt, a, "succeeded")
    assert 0.9 <= ja["runtime_s"] < 2.5, ja["runtime_s"]
