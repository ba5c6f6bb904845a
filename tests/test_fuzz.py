"""Property-based fuzzing of what users type: any job file gives jobs or one SpecError
line; any command line gives a result or one line with exit 2, never a traceback. The
commands run for real, in-process, against a state folder of their own (scheduler starts
and blocking commands are left out)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import kill_tmux_server, stop_scheduler
from tmuxtrain.cli import main
from tmuxtrain.core.errors import SpecError
from tmuxtrain.core.model import JobSpec
from tmuxtrain.core.spec import CHECKPOINT_KEYS, JOB_KEYS
from tmuxtrain.jobfile import load_jobs
from tmuxtrain.settings import from_env

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["1GiB", "20 GiB", "12h", "-1", "0", "{lr}", "~", "ünï", "a\x00b", "1e400"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
job_dicts = st.dictionaries(
    st.sampled_from([*JOB_KEYS, "jobs", "defaults", "matrix", "nme", ""]), values, max_size=8
)
checkpoints = st.dictionaries(st.sampled_from([*CHECKPOINT_KEYS, "x"]), values, max_size=5)


def one_line(e: SpecError) -> None:
    assert "\n" not in str(e) and str(e).startswith(e.path)


@contextlib.contextmanager
def job_file(text: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "job.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        yield path


def read(text: str) -> None:
    with job_file(text) as path:
        try:
            specs = load_jobs(path)
        except SpecError as e:
            one_line(e)
        else:
            assert all(isinstance(s, JobSpec) for s in specs)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_jobs_or_one_spec_error(text: str) -> None:
    read(text)


@FUZZ
@given(job_dicts, st.one_of(st.none(), checkpoints))
def test_any_job_document_is_jobs_or_one_spec_error(doc: dict[str, object], ck: object) -> None:
    if ck is not None:
        doc = {**doc, "checkpoints": ck}
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    read(text)


# ---- the command line ------------------------------------------------------------------------

# Commands that would start a scheduler, open a terminal UI or wait forever are not run.
COMMANDS = [
    "add", "ls", "show", "cancel", "retry", "hold", "release", "priority", "edit", "clean",
    "metrics", "log", "gpus", "events", "status", "doctor", "completion", "_complete", "sbatch",
]  # fmt: skip
OPTIONS = [
    "--json", "--gpus", "--vram", "--name", "--priority", "--project", "--after", "--retries",
    "--timeout", "--cwd", "--env", "--clean-env", "--hold", "--force", "--state", "--since",
    "--job", "--kind", "--command", "--older-than", "-n", "--lines", "--out", "--partition",
    "--shell", "--", "-h",
]  # fmt: skip
words = st.one_of(
    st.sampled_from(OPTIONS),
    st.sampled_from(["1", "2", "0", "-1", "99999999999999999999999", "1e3", "x", "a=b", "=",
                     "fake", "bash", "pending,failed", "7d", "20GiB", "none", "job.yaml", ""]),
    st.text(max_size=12),
)  # fmt: skip
command_lines = st.tuples(st.sampled_from(COMMANDS), st.lists(words, max_size=6))


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tmuxtrain-fuzz-"))
    (root / "job.yaml").write_text("name: j\ncommand: 'true'\ngpus: 0\n")
    saved = dict(os.environ)
    os.environ.update(
        TMUXTRAIN_HOME=str(root / "home"),
        TMUXTRAIN_GPUS="fake:2x24GiB",
        TMUXTRAIN_TMUX_SOCKET=f"tmuxtrain-fuzz-{os.getpid()}",
        TMUXTRAIN_CONFIG=str(root / "config.yaml"),
    )
    (root / "config.yaml").write_text("headroom: 0\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["add", "--no-start", "--gpus", "0", "--name", "seed", "--", "true"]) == 0
        yield root
    finally:
        settings = from_env()
        stop_scheduler(settings)  # none should have started; if one did, it ends here
        kill_tmux_server(settings.socket or "")
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)


def run(argv: list[str]) -> tuple[int, str]:
    """main(argv) in-process: its exit status and stderr (a SystemExit from argparse too)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        stdin, sys.stdin = sys.stdin, io.StringIO("")
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        finally:
            sys.stdin = stdin
    return code, err.getvalue()


@FUZZ
@given(command_lines)
def test_any_command_line_is_a_result_or_a_short_error(
    home: Path, line: tuple[str, list[str]]
) -> None:
    cmd, args = line
    if "-f" in args or "--follow" in args:
        return
    argv = [cmd, *args]
    if cmd in ("add", "sbatch"):
        argv.insert(1, "--no-start" if cmd == "add" else "--out=sbatch-out")
        if cmd == "sbatch" and "--submit" in argv:
            return
    code, err = run(argv)
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 1, 2, 3), (argv, code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)
