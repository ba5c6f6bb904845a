"""Real ML frameworks as tmuxtrain jobs (opt-in: `pytest -m frameworks`).

Each test runs a tiny CPU training script from scripts/capture_logs/ in a real tmux window
through the real scheduler, and checks the metrics that reach `show`: what a person reads
at the end of the job's log. A framework that is not importable here is skipped. Run them
from an environment that has the frameworks (scripts/capture_logs/freeze.txt lists one):

    /path/to/fw/bin/pip install -e '.[test]' && /path/to/fw/bin/python -m pytest -m frameworks
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env, wait_until

# Real training takes a while on a shared CPU: more than the suite's 120 s per test.
pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(900)]

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts" / "capture_logs"
PY = sys.executable


def run_job(tt: Env, command: str, *, extra: str = "", timeout: float = 300) -> dict[str, Any]:
    """Queue `command` as a CPU job (in scripts/capture_logs), wait for it to succeed and
    for its last metrics to arrive; its `show` record."""
    tt.write("job.yaml", f"name: fw\ncwd: {SCRIPTS}\ngpus: 0\ncommand: {command}\n{extra}")
    [job] = [int(x) for x in tt.cli("add", "job.yaml", check=True).stdout.split()]
    c = tt.client()
    wait_until(
        lambda: c.show(job)["state"] in ("succeeded", "failed", "cancelled"),
        timeout=timeout,
        interval=0.5,
        what=f"job {job} to end",
    )
    shown = c.show(job)
    assert shown["state"] == "succeeded", tt.cli("log", str(job)).stdout[-3000:]
    # what it printed last reaches its metrics a moment after it ended (README: within 2 s)
    time.sleep(3)
    return dict(c.show(job))


def test_hugging_face_trainer_with_checkpoint_evaluations(tt: Env) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    out = tt.root / "hf"
    shown = run_job(
        tt,
        f"{PY} hf_trainer.py --out {out} --save-steps 40",
        extra=(
            f"checkpoints: {{watch: '{out}/checkpoint-*', "
            f"eval: '{PY} hf_eval.py {{checkpoint}}', gpus: 0, keep_best: eval_loss}}\n"
        ),
    )
    m = shown["metrics"]
    assert (m["step"], m["steps"], m["epoch"], m["progress"]) == (80, 80, 2, 1.0)
    assert 3.0 < m["loss"] < 5.0 and 3.0 < m["eval_loss"] < 5.0 and "lr" in m
    c = tt.client()
    job = shown["id"]

    def scored() -> list[dict[str, Any]] | None:
        cks = c.show(job)["checkpoints"]
        done = [
            ck for ck in cks if ck["eval_state"] == "succeeded" and "eval_loss" in ck["metrics"]
        ]
        return cks if len(cks) == 2 and len(done) == 2 else None

    cks = wait_until(scored, timeout=240, interval=1.0, what="2 evaluated checkpoints")
    assert sorted(Path(ck["path"]).name for ck in cks) == ["checkpoint-40", "checkpoint-80"]
    assert all(3.0 < ck["metrics"]["eval_loss"] < 5.0 for ck in cks)
    assert sum(1 for ck in cks if ck["best"]) == 1


@pytest.mark.parametrize("bar", ["rich", "tqdm"])
def test_lightning(tt: Env, bar: str) -> None:
    pytest.importorskip("lightning")
    if bar == "rich":
        pytest.importorskip("rich")
    m = run_job(tt, f"{PY} lightning_fit.py --bar {bar}")["metrics"]
    assert (m["epoch"], m["step"], m["steps"], m["progress"]) == (2, 40, 40, 1.0)
    assert m["loss"] == m["train_loss"] and 0 < m["loss"] < 1
    assert 0.5 < m["val_acc"] <= 1 and 0 < m["val_loss"] < 1
    assert "v_num" not in m and "s_train_loss" not in m and "trainable_params" not in m


@pytest.mark.parametrize("save_last", ["true", "link"])
def test_lightning_checkpoint_evaluations(tt: Env, save_last: str) -> None:
    """ModelCheckpoint every epoch: each epoch file is evaluated and scored from
    `validate()`'s table; last.ckpt rewritten in place is evaluated again after each
    rewrite that settled, a last.ckpt symlink never on its own."""
    pytest.importorskip("lightning")
    ck = tt.root / "ck"
    shown = run_job(
        tt,
        f"{PY} lightning_fit.py --ckpt {ck} --save-last {save_last} --epoch-sleep 3",
        extra=(
            f"checkpoints: {{watch: '{ck}/*.ckpt', eval: '{PY} lightning_eval.py {{checkpoint}}',"
            " gpus: 0, keep_best: val_loss}\n"
        ),
    )
    c = tt.client()
    job = shown["id"]

    def scored() -> list[dict[str, Any]] | None:
        cks = c.show(job)["checkpoints"]
        ended = all(  # and its last output, the results table, read: a moment after
            ck["eval_state"] == "failed"
            or (ck["eval_state"] == "succeeded" and "val_loss" in ck["metrics"])
            for ck in cks
        )
        epochs = [ck for ck in cks if ck["path"].split("/")[-1].startswith("epoch=")]
        return cks if len(epochs) == 3 and ended else None

    cks = wait_until(scored, timeout=300, interval=1.0, what="3 evaluated epoch checkpoints")
    assert all(ck["eval_state"] == "succeeded" for ck in cks), cks
    assert all(0 < ck["metrics"]["val_loss"] < 1 for ck in cks)
    last = [ck["version"] for ck in cks if ck["path"].endswith("/last.ckpt")]
    if save_last == "link":
        assert last == []
    else:
        assert 1 <= len(last) <= 3 and last == list(range(1, len(last) + 1))
    assert sum(1 for ck in cks if ck["best"]) == 1


@pytest.mark.parametrize("verbose", ["1", "2"])
def test_keras(tt: Env, verbose: str) -> None:
    tt.set("KERAS_BACKEND", "torch")  # Keras 3 imports TensorFlow unless told otherwise
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    m = run_job(tt, f"{PY} keras_fit.py --verbose {verbose}")["metrics"]
    assert (m["epoch"], m["epochs"], m["step"], m["steps"], m["progress"]) == (3, 3, 52, 52, 1.0)
    assert 0 < m["loss"] < 1 and 0.5 < m["val_accuracy"] <= 1
    assert m.get("eta_s", 0.0) == 0.0  # finished means finished (verbose=2 kept 2.04 s)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_boosting(tt: Env, lib: str) -> None:
    pytest.importorskip(lib)
    m = run_job(tt, f"{PY} boosting.py {lib}")["metrics"]
    train = "train_logloss" if lib == "xgboost" else "train_l2"
    valid = "eval_logloss" if lib == "xgboost" else "valid_l2"
    assert m["loss"] == m[train] and valid in m
    assert m["step"] == (29 if lib == "xgboost" else 30)  # XGBoost counts rounds from 0


def test_tqdm_loop(tt: Env) -> None:
    pytest.importorskip("tqdm")
    pytest.importorskip("torch")
    m = run_job(tt, f"{PY} tqdm_loop.py")["metrics"]
    assert (m["epoch"], m["epochs"], m["step"], m["steps"]) == (3, 3, 24, 24)
    assert 0 < m["loss"] < 1 and 0 < m["val_loss"] < 1


def test_fastai(tt: Env) -> None:
    pytest.importorskip("fastai")
    m = run_job(tt, f"{PY} fastai_fit.py")["metrics"]
    assert (m["epoch"], m["epochs"], m["step"], m["steps"], m["progress"]) == (3, 3, 24, 24, 1.0)
    assert {"train_loss", "valid_loss", "accuracy", "loss"} <= set(m)


def test_ultralytics(tt: Env) -> None:
    pytest.importorskip("ultralytics")
    m = run_job(tt, f"{PY} ultralytics_train.py", timeout=600)["metrics"]
    assert (m["epoch"], m["epochs"], m["progress"]) == (2, 2, 1.0)
    assert {"box_loss", "cls_loss", "dfl_loss", "loss", "precision", "recall", "map50"} <= set(m)
    assert "hsv_h" not in m and "mosaic" not in m  # the configuration dump is no metric
