"""A read-only state folder (a colleague's queue, a backup, a full quota): the read
commands work, a write is one line with exit 10. Root ignores file modes, so as root the
commands run as `nobody` on a folder that `nobody` owns and cannot write; as another
user they run as that user on a folder made read-only with chmod."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tmuxtrain.core.model import JobSpec
from tmuxtrain.settings import from_env
from tmuxtrain.store import Store


def _nobody() -> tuple[int, int] | None:
    import pwd

    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


@pytest.fixture
def home() -> Iterator[Path]:
    """A state folder with two jobs (one with metrics, events and a log), outside /tmp's
    private pytest folders so that `nobody` can reach it."""
    root = Path(tempfile.mkdtemp(prefix="tmuxtrain-ro-"))
    os.chmod(root, 0o755)
    home = root / "home"
    settings = from_env({"TMUXTRAIN_HOME": str(home)})
    settings.ensure_dirs()
    store = Store(settings.db_path)
    spec = JobSpec(name="train", command="python train.py", cwd="/")
    [a, _] = store.add_jobs([(spec, (), None), (spec, (), None)], 100.0, settings.logs_dir)
    store.add_metrics(a, [("loss", 120.0, 5.0), ("loss", 130.0, 10.0)], {"loss": 0.5}, 130.0, 9)
    store.close()
    Path(settings.logs_dir, f"{a}.log").write_text("epoch 1 loss 0.5\n")
    yield home
    subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
    shutil.rmtree(root, ignore_errors=True)


def read_only(home: Path) -> list[str]:
    """Make `home` read-only for the user the commands will run as; the argv prefix that
    runs a command as that user."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        ids = _nobody()
        if ids is None or shutil.which("setpriv") is None:
            pytest.skip("needs a `nobody` user and setpriv to drop root")
        subprocess.run(["chown", "-R", f"{ids[0]}:{ids[1]}", str(home)], check=True)
        prefix = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups"]
    subprocess.run(["chmod", "-R", "a-w", str(home)], check=True)
    return prefix


def run(prefix: list[str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TMUXTRAIN_HOME": str(home),
        "TMUXTRAIN_GPUS": "fake:1x24GiB",
        "TMUXTRAIN_TMUX_SOCKET": "tmuxtrain-ro-none",
        "HOME": str(home.parent),
    }
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tmuxtrain.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=60,
    )


def test_read_commands_work_on_a_read_only_state_folder(home: Path) -> None:
    prefix = read_only(home)
    ls = run(prefix, home, "ls", "--json")
    assert ls.returncode == 0, ls.stderr
    assert [j["id"] for j in json.loads(ls.stdout)] == [1, 2]
    assert run(prefix, home, "ls").returncode == 0
    show = run(prefix, home, "show", "1", "--json")
    assert show.returncode == 0 and json.loads(show.stdout)["metrics"]["loss"] == 0.5
    metrics = run(prefix, home, "metrics", "1", "--json")
    assert metrics.returncode == 0 and len(json.loads(metrics.stdout)["loss"]) == 2
    log = run(prefix, home, "log", "1")
    assert log.returncode == 0 and log.stdout == "epoch 1 loss 0.5\n"
    events = run(prefix, home, "events", "--since", "0")
    assert events.returncode == 0, events.stderr
    kinds = [json.loads(line)["kind"] for line in events.stdout.splitlines()]
    assert kinds == ["submitted", "submitted", "metric"]
    gpus = run(prefix, home, "gpus", "--json")
    assert gpus.returncode == 0 and len(json.loads(gpus.stdout)) == 1
    assert run(prefix, home, "doctor").returncode == 0


def test_a_write_on_a_read_only_state_folder_is_one_line(home: Path) -> None:
    prefix = read_only(home)
    for args in (["cancel", "2"], ["add", "--no-start", "--gpus", "0", "--", "true"]):
        proc = run(prefix, home, *args)
        assert proc.returncode == 10, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
        assert "read-only" in proc.stderr
