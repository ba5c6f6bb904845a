"""The cluster harness itself: why it declines to start, what a failing daemon says, and that
a crashed run's daemons (and only those) are ended by the next run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.slurm_cluster import (
    ClusterUnavailable,
    SlurmCluster,
    _alive,
    new_folder,
    reap_leftovers,
    start_cluster,
)

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]


def test_not_root_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ClusterUnavailable, match=r"^needs root"):
        start_cluster(tmp_path)


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "slurmd" else "/bin/x")
    with pytest.raises(ClusterUnavailable) as e:
        start_cluster(tmp_path)
    assert str(e.value).startswith("Slurm or munge not installed (no slurmd)")
    assert "scripts/install-slurm.sh" in str(e.value) and "\n" not in str(e.value)


def test_a_folder_not_searchable_by_all_is_refused(slurm_cluster: SlurmCluster) -> None:
    private = Path(new_folder())
    try:
        os.chmod(private, 0o700)
        with pytest.raises(ClusterUnavailable, match="searchable by all"):
            start_cluster(private / "cluster")
    finally:
        shutil.rmtree(private)


def test_a_failing_daemon_is_reported_with_its_own_log_line(slurm_cluster: SlurmCluster) -> None:
    folder = new_folder()
    try:
        with pytest.raises(ClusterUnavailable) as e:
            start_cluster(folder, extra_conf="AccountingStorageTRES=gres/gpu")
        assert str(e.value).startswith("slurmctld exited with 1: slurmctld: fatal: slurmdbd is")
        assert not list(folder.glob("cluster.json"))  # nothing left running, nothing recorded
    finally:
        shutil.rmtree(folder)


def test_a_crashed_runs_cluster_is_ended_by_the_next_run(slurm_cluster: SlurmCluster) -> None:
    """A second cluster beside the session's (no clash), with a running job; its owner dies
    by SIGKILL, and reap_leftovers ends its daemons and the job, and leaves ours alone."""
    # Not under tmp_path: pytest's temp root is 0700, and munged needs every folder above
    # its socket searchable by all.
    parent = Path(tempfile.mkdtemp(prefix="tmuxtrain-reap-test-"))
    parent.chmod(0o755)
    folder = parent / "tmuxtrain-slurm-crashed"
    owner = subprocess.Popen(
        [sys.executable, "-m", "tests.slurm_cluster", str(folder)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert owner.stdout is not None
        lines = [owner.stdout.readline(), owner.stdout.readline()]
        assert lines[1].startswith("export SLURM_CONF="), lines
        env = {**slurm_cluster.env, "SLURM_CONF": lines[1].split("=", 1)[1].strip()}
        job = subprocess.run(
            ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "exec sleep 300"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

        def job_pid() -> int | None:
            out = subprocess.run(
                ["scontrol", "listpids", job], env=env, capture_output=True, text=True
            ).stdout.split()
            pids = [
                int(x) for x in out[5:][::5] if x.isdigit()
            ]  # PID JOBID STEPID LOCALID GLOBALID
            return next((p for p in pids if _alive(p)), None)

        sleeper = wait_until(job_pid, timeout=20, what="the job of the second cluster")
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    try:
        record = json.loads((folder / "cluster.json").read_text())
        daemons = [pid for pid, _ in record["daemons"].values()]
        assert sorted(record["daemons"]) == ["munged", "slurmctld", "slurmd"]
        assert all(_alive(p) for p in daemons)  # the crash left them running
        assert reap_leftovers(parent) == [folder]
        wait_until(lambda: not any(_alive(p) for p in [*daemons, sleeper]), timeout=10)
        assert not folder.exists()
    finally:
        reap_leftovers(parent)
        shutil.rmtree(parent, ignore_errors=True)
    assert set(slurm_cluster.alive().values()) == {True}
    assert slurm_cluster.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle"
