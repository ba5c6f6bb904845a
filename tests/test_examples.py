"""The example training/eval scripts and job files shipped in tmuxtrain/examples."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "tmuxtrain" / "examples"
TRAIN = EXAMPLES / "train_example.py"
EVAL = EXAMPLES / "eval_example.py"
EPOCH_RE = re.compile(r"^epoch (\d+)/(\d+) loss (\d+\.\d+) val_acc (\d+\.\d+)$", re.M)
STEP_RE = re.compile(r"^step (\d+)/(\d+) loss=(\d+\.\d+)$", re.M)


def run_train(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run train_example.py with pipes (not a tty) and tiny defaults."""
    return subprocess.run(
        [sys.executable, str(TRAIN), "--sleep", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def load_train_module() -> ModuleType:
    """Import train_example.py as a module (it is package data, not a package module)."""
    spec = importlib.util.spec_from_file_location("train_example", TRAIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while executing it
    spec.loader.exec_module(module)
    return module


def test_trains_and_loss_decreases() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1", "TMUXTRAIN_JOB_ID": "7"}
    proc = run_train("--epochs", "3", "--steps", "20", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "using GPUs: 0,1 (job 7)" in proc.stdout
    epochs = EPOCH_RE.findall(proc.stdout)
    assert [(e, n) for e, n, _, _ in epochs] == [("1", "3"), ("2", "3"), ("3", "3")]
    losses = [float(loss) for _, _, loss, _ in epochs]
    assert losses[-1] < losses[0] - 0.05  # a real decrease, not batch noise
    assert float(epochs[-1][3]) > 0.75  # well above chance on the validation set
    steps = STEP_RE.findall(proc.stdout)
    assert [int(s) for s, _, _ in steps] == [10, 20, 30, 40, 50, 60]
    assert all(total == "60" for _, total, _ in steps)
    assert float(steps[-1][2]) < float(steps[0][2])
    assert "\r" not in proc.stdout
    assert proc.stderr == ""


def test_quick_run_is_fast() -> None:
    start = time.monotonic()
    proc = run_train("--epochs", "2", "--steps", "5")
    assert proc.returncode == 0, proc.stderr
    assert len(EPOCH_RE.findall(proc.stdout)) == 2
    assert time.monotonic() - start < 5.0


def test_checkpoints_are_atomic_and_evaluable(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "job"
    seen_bad: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        # A watcher must never see a *.pt that does not parse as a whole checkpoint.
        while not stop.is_set():
            for p in out.glob("*.pt") if out.exists() else []:
                try:
                    json.loads(p.read_text(encoding="utf-8"))["model"]
                except FileNotFoundError:
                    continue
                except (ValueError, KeyError) as exc:
                    seen_bad.append(f"{p.name}: {exc}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        proc = run_train("--epochs", "3", "--steps", "10", "--seed", "3", "--out", str(out))
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert seen_bad == []
    assert sorted(p.name for p in out.iterdir()) == ["epoch1.pt", "epoch2.pt", "epoch3.pt"]
    ckpt = json.loads((out / "epoch2.pt").read_text(encoding="utf-8"))
    assert ckpt["epoch"] == 2 and ckpt["seed"] == 3

    result = subprocess.run(
        [sys.executable, str(EVAL), str(out / "epoch2.pt")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"eval_loss=(\d+\.\d+) eval_acc=(\d+\.\d+)\n", result.stdout)
    assert match, result.stdout
    # Same validation set as training: eval accuracy equals the epoch-2 val_acc.
    val_acc_epoch2 = EPOCH_RE.findall(proc.stdout)[1][3]
    assert match.group(2) == val_acc_epoch2


def test_eval_rejects_a_bad_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_text('{"model": ', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(EVAL), str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "cannot read checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_fail_at_epoch_exits_1() -> None:
    proc = run_train("--epochs", "3", "--steps", "10", "--fail-at-epoch", "2")
    assert proc.returncode == 1
    assert [e for e, *_ in EPOCH_RE.findall(proc.stdout)] == ["1"]
    assert "simulated failure at epoch 2" in proc.stderr


def test_oom_at_epoch_prints_cuda_oom() -> None:
    proc = run_train("--epochs", "3", "--steps", "10", "--oom-at-epoch", "1")
    assert proc.returncode == 1
    assert "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in proc.stderr
    assert EPOCH_RE.findall(proc.stdout) == []


def test_tty_output_redraws_progress_bar() -> None:
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(TRAIN), "--epochs", "2", "--steps", "5", "--sleep", "0"],
            stdout=slave,
            stderr=slave,
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    # The terminal turns "\n" into "\r\n"; a redraw is "\r" that starts a bar, not a newline.
    redraws = re.findall(r"\repoch (\d)/2 +\d+%\|[^|]*\| (\d)/5 \[", text)
    assert redraws == [(e, s) for e in "12" for s in "12345"]
    assert "loss=" in text
    assert len(EPOCH_RE.findall(text.replace("\r\n", "\n"))) == 2
    assert STEP_RE.findall(text.replace("\r\n", "\n")) == []


def test_sigint_prints_interrupted_and_exits_130() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN), "--epochs", "50", "--steps", "50", "--sleep", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "using GPUs: ..." once the script is running
    assert first.startswith("using GPUs:")
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert rest.rstrip().endswith("interrupted")
    assert "Traceback" not in err


def test_example_job_files_use_valid_train_arguments() -> None:
    parser = load_train_module().build_parser()
    names: list[str] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        jobs = doc.get("jobs", [doc])
        for job in jobs:
            matrix = job.get("matrix") or doc.get("matrix") or {}
            subst = {key: values[0] for key, values in matrix.items()}
            argv = shlex.split(job["command"].format(**subst))
            names.append(job["name"])
            assert argv[0] == "python3", path.name
            if argv[1].endswith(".py"):
                assert (EXAMPLES / argv[1]).is_file(), path.name
                args = parser.parse_args(argv[2:])
                assert args.epochs * args.steps * args.sleep <= 40, path.name
    assert {"mlp-baseline", "mlp-lr{lr}-s{seed}", "prep", "pretrain", "finetune"} <= set(names)
