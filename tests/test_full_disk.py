"""A full disk under a running job, with real tmux, the real scheduler and a real tiny
tmpfs (mounted as root, as CI runs): the job is marked `log incomplete: no space left`,
the scheduler says so once, its log shows where output was lost, and everything goes on
when space returns."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Env, wait_until
from tests.test_scheduler import add, wait_state
from tests.test_storage_faults import tiny_disk
from tmuxtrain.runners.wrapper import LOST_MARK, exit_banner


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_full_disk_marks_the_job_and_the_scheduler_recovers(tt: Env) -> None:
    with tiny_disk(tt.root / "disk", "6m", tt=tt) as disk:
        tt.set("TMUXTRAIN_HOME", str(disk / "home"))
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * 2**20)
        gate = tt.root / "gate"
        flood = "head -c 8000000 /dev/zero | tr '\\0' x | fold -w 100"
        after = "for i in $(seq 20); do echo after-the-gap-$i; sleep 0.1; done"
        flooded = tt.root / "flooded"
        wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
        script = f"{flood}; touch {flooded}; {wait}; {after}"
        [a] = add(tt, "--gpus", "0", "--", script)
        wait_until(flooded.exists, timeout=60, what="the job's flood of output")
        assert free_bytes(disk) < 64 * 1024
        ballast.unlink()  # space again
        gate.touch()
        ja = wait_state(tt, a, "succeeded", timeout=60)
        wait_until(
            lambda: "log incomplete: no space left" in tt.client().show(a)["notes"],
            what="the note on the job",
        )
        text = Path(ja["log_path"]).read_bytes().decode("utf-8", "replace")
        assert LOST_MARK in text
        assert 0 < text.count("x" * 100) < 80_000  # output was lost, not all of it
        # Logging resumed after the hole: the job's last lines are there.
        assert text.index(LOST_MARK) < text.index(exit_banner(a, 1))
        [b] = add(tt, "--gpus", "0", "--", "echo fine")
        jb = wait_state(tt, b, "succeeded")
        wait_until(lambda: "fine" in Path(jb["log_path"]).read_text(), what="b's log")
        assert tt.client().show(b)["notes"] == []
        log = Path(tt.settings.scheduler_log).read_text()
        assert "Traceback" not in log, log
        # The disk-wide line needs a tick while the disk is full (one statvfs a tick): at
        # most once; the job's own line always, once.
        assert log.count("no space left for the jobs' logs") <= 1, log
        assert log.count(f"job {a}: log incomplete") == 1, log
