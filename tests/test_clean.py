"""`tmuxtrain clean`: finished jobs go with their logs, metric history, events and kept
windows; jobs a waiting job depends on stay; ids are never handed out again."""

from __future__ import annotations

import json
import os
import sqlite3

from tests.conftest import Env, wait_until
from tests.terminal import on_terminal

TRAIN = 'for i in 1 2 3; do echo "epoch $i/3 loss 0.$((9 - i))"; done'


def add(tt: Env, *args: str) -> int:
    [job_id] = [int(x) for x in tt.cli("add", *args, check=True).stdout.split()]
    return job_id


def rows(tt: Env, table: str, job_id: int) -> int:
    db = sqlite3.connect(tt.settings.db_path)
    try:
        return int(
            db.execute(f"SELECT count(*) FROM {table} WHERE job_id = ?", (job_id,)).fetchone()[0]
        )
    finally:
        db.close()


def windows(tt: Env) -> set[str]:
    return set(tt.tmux("list-windows", "-a", "-F", "#{window_id}").split())


def test_clean_removes_finished_jobs_with_what_they_left(tt: Env) -> None:
    ok = add(tt, "--gpus", "0", "--name", "ok", "--", TRAIN)
    bad = add(tt, "--gpus", "0", "--name", "bad", "--", "echo oops; exit 3")
    base = add(tt, "--gpus", "0", "--name", "base", "--", "true")
    long = add(tt, "--gpus", "0", "--name", "long", "--", "sleep 60")
    waiter = add(tt, "--gpus", "0", "--after", str(base), "--after", str(long), "--", "true")
    stopped = add(tt, "--no-start", "--gpus", "0", "--name", "stopped", "--", "true")
    tt.cli("cancel", str(stopped), check=True)
    assert tt.cli("wait", str(ok), str(bad), str(base), "--timeout", "30").returncode == 1
    wait_until(lambda: tt.client().show(ok)["metrics"].get("loss") == 0.6, what="ok's loss")
    kept_window = tt.client().show(ok)["tmux_window"]
    assert kept_window in windows(tt)  # finished windows stay for reading ...
    logs = {j: tt.client().show(j)["log_path"] for j in (ok, bad)}
    assert all(os.path.exists(p) for p in logs.values())
    assert rows(tt, "metrics", ok) > 0 and rows(tt, "events", ok) > 0

    # only some states
    proc = tt.cli("clean", "--state", "failed", "--json", check=True)
    assert json.loads(proc.stdout) == {"removed": [bad], "kept": {}, "gone": []}
    assert not os.path.exists(logs[bad]) and rows(tt, "events", bad) == 0
    assert tt.cli("show", str(bad)).returncode == 2

    # only those finished long ago: none yet
    proc = tt.cli("clean", "--older-than", "1h", "--json", check=True)
    assert json.loads(proc.stdout)["removed"] == []

    # everything finished, but what a waiting job depends on
    proc = tt.cli("clean", check=True)
    assert proc.stderr.strip() == f"tmuxtrain clean: kept job {base}: job {waiter} waits for it"
    left = {j["id"]: j["state"] for j in tt.client().list()}
    assert left == {base: "succeeded", long: "running", waiter: "pending"}
    for table in ("metrics", "events", "attempts"):
        assert rows(tt, table, ok) == 0, table
    assert not os.path.exists(logs[ok])
    assert kept_window not in windows(tt)  # ... and go with their job
    assert tt.client().show(long)["tmux_window"] in windows(tt)  # a running one stays

    # cleaning again is harmless; a job that has not finished is refused
    again = tt.cli("clean", str(ok), "--json", check=True)
    assert json.loads(again.stdout) == {"removed": [], "kept": {}, "gone": [ok]}
    assert f"job {ok} was already cleaned" in again.stderr
    proc = tt.cli("clean", str(long))
    assert proc.returncode == 2 and f"job {long} is running" in proc.stderr
    proc = tt.cli("clean", "--state", "running")
    assert proc.returncode == 2 and "have not finished" in proc.stderr

    # ids are never reused, even of the newest job removed
    newest = add(tt, "--no-start", "--", "true")
    assert newest == stopped + 1
    tt.cli("cancel", str(newest), check=True)
    shown = on_terminal(tt.environ, "clean", str(newest), cwd=tt.root)
    assert shown.stdout.strip() == f"removed 1 finished job: {newest}"
    assert add(tt, "--no-start", "--", "true") == newest + 1
