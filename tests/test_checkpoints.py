"""Checkpoint-triggered evaluation end to end: the example training script writes
checkpoints, each complete one gets exactly one evaluation job, scores attach to it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Env, wait_until
from tmuxtrain.core.checkpoints import (
    Seen,
    best_index,
    dir_complete,
    eval_name,
    eval_spec,
    evals_ref,
    is_rewrite,
    settle,
)
from tmuxtrain.core.model import CheckpointSpec, JobSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "tmuxtrain" / "examples"


def test_settle_waits_until_a_file_stops_growing() -> None:
    state, ready = settle({}, {"a.pt": (10, 1.0)}, now=100.0)
    assert ready == [] and state["a.pt"] == Seen(10, 1.0, 100.0)
    state, ready = settle(state, {"a.pt": (20, 2.0)}, now=100.5)  # still growing
    assert ready == [] and state["a.pt"].since == 100.5
    state, ready = settle(state, {"a.pt": (20, 2.0)}, now=101.0)
    assert ready == []  # unchanged for 0.5 s only
    state, ready = settle(state, {"a.pt": (20, 2.0)}, now=101.6)
    assert ready == ["a.pt"]
    state, ready = settle(state, {}, now=102.0)
    assert state == {} and ready == []


def test_eval_spec_quotes_the_path_and_outranks_training() -> None:
    parent = JobSpec(
        name="run", command="train", cwd="/w", priority=3, project="p", env={"A": "1"},
        checkpoints=CheckpointSpec(watch="ck/*.pt", eval="python eval.py {checkpoint} --x", gpus=0),
    )  # fmt: skip
    spec = eval_spec(parent, "/w/ck/it's 1.pt")
    assert spec.command == "python eval.py '/w/ck/it'\"'\"'s 1.pt' --x"
    assert spec.priority == 4 and spec.gpus == 0 and spec.project == "p" and spec.env == {"A": "1"}
    assert spec.name == "run-eval-it's 1.pt" and spec.cwd == "/w"


def test_a_hugging_face_directory_is_complete_only_with_trainer_state() -> None:
    hf = ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"]
    assert not dir_complete("checkpoint-500", hf)
    assert dir_complete("checkpoint-500", [*hf, "trainer_state.json"])
    assert dir_complete("checkpoint_3", ["model.safetensors"])  # Accelerate: no marker
    assert not dir_complete("best", [])


def test_a_rewrite_is_a_new_size_or_mtime_of_a_known_file() -> None:
    assert is_rewrite((10, 1.0), (10, 2.0)) and is_rewrite((10, 1.0), (11, 1.0))
    assert not is_rewrite((10, 1.0), (10, 1.0))
    assert not is_rewrite(None, (10, 1.0))  # recorded before versions: taken as this one


def test_evaluation_names_tell_checkpoints_and_versions_apart() -> None:
    assert eval_name("run", "/w/out/checkpoint-500") == "run-eval-checkpoint-500"
    assert eval_name("run", "/w/out/checkpoint-500/") == "run-eval-checkpoint-500"
    assert eval_name("run", "/w/last.ckpt", 3) == "run-eval-last.ckpt@3"


def test_evals_ref_names_the_job_whose_evaluations_to_wait_for() -> None:
    assert evals_ref("train.evals") == "train"
    assert evals_ref("lr0.1.evals") == "lr0.1"
    assert evals_ref("7.evals") == "7"
    assert evals_ref("train") is None and evals_ref(".evals") is None


def test_best_index_minimises_losses_and_maximises_the_rest() -> None:
    cks: list[dict[str, Any]] = [
        {"metrics": {"eval_loss": 0.5, "eval_acc": 0.7}},
        {"metrics": {"eval_loss": 0.3, "eval_acc": 0.6}},
        {"metrics": {}},
    ]
    assert best_index(cks, "eval_loss") == 1
    assert best_index(cks, "eval_acc") == 0
    assert best_index(cks, "min:eval_acc") == 1
    assert best_index(cks, "nothing") is None


def test_each_checkpoint_is_evaluated_once_with_scores(tt: Env) -> None:
    work = tt.root / "work"
    work.mkdir()
    for name in ("train_example.py", "eval_example.py"):
        shutil.copy(EXAMPLES / name, work / name)
    py = sys.executable
    tt.write(
        "job.yaml",
        f"""
name: mlp
cwd: {work}
gpus: 0
command: {py} train_example.py --epochs 3 --steps 10 --sleep 0.05 --out runs/mlp
checkpoints: {{watch: 'runs/{{name}}/*.pt', eval: '{py} eval_example.py {{checkpoint}}', gpus: 0, keep_best: eval_acc}}
""",
    )
    [train] = [int(x) for x in tt.cli("add", "job.yaml", check=True).stdout.split()]
    c = tt.client()

    def evals_done() -> list[dict[str, Any]] | None:
        cks = c.show(train)["checkpoints"]
        done = all(ck["eval_state"] == "succeeded" and ck["metrics"] for ck in cks)
        return cks if len(cks) == 3 and done else None  # scores: a moment after they end

    cks = wait_until(evals_done, timeout=60, what="3 evaluated checkpoints")
    assert [Path(ck["path"]).name for ck in cks] == ["epoch1.pt", "epoch2.pt", "epoch3.pt"]
    for ck in cks:
        assert 0.0 < ck["metrics"]["eval_acc"] <= 1.0 and "eval_loss" in ck["metrics"]
    best = [ck for ck in cks if ck["best"]]
    assert len(best) == 1 and best[0]["metrics"]["eval_acc"] == max(
        ck["metrics"]["eval_acc"] for ck in cks
    )
    evals = [j for j in c.list() if j["parent_id"] == train]
    assert len(evals) == 3  # exactly once each
    # A restarted scheduler does not evaluate them again.
    tt.cli("down", check=True)
    tt.cli("up", check=True)
    tt.cli("add", "--gpus", "0", "--", "true", check=True)
    assert c.wait(timeout=30)
    assert len([j for j in c.list() if j["parent_id"] == train]) == 3
    assert "best" in tt.cli("show", str(train), check=True).stdout


def test_a_symlink_stands_for_its_target_as_the_glob_spells_it(tmp_path: Path) -> None:
    from tmuxtrain.daemon.checkpoints import link_target

    (tmp_path / "real" / "ck").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "real")  # a home reached through a link
    ck = tmp_path / "alias" / "ck"
    (ck / "epoch=1-step=20.ckpt").write_bytes(b"x")
    (ck / "prev").symlink_to("epoch=1-step=20.ckpt")
    (ck / "last.ckpt").symlink_to("prev")  # a link to a link
    assert link_target(str(ck / "last.ckpt")) == str(ck / "epoch=1-step=20.ckpt")
    assert link_target(str(ck / "epoch=1-step=20.ckpt")) == str(ck / "epoch=1-step=20.ckpt")


def test_a_pattern_that_matches_a_whole_tree_queues_nothing_and_says_so(tt: Env) -> None:
    work = tt.root / "work"
    (work / "data").mkdir(parents=True)
    gate = tt.root / "gate"
    make = "for i in $(seq 60); do echo x > data/f$i.bin; done"
    tt.write(
        "job.yaml",
        f"""
name: tree
cwd: {work}
gpus: 0
command: "{make}; while [ ! -e {gate} ]; do sleep 0.05; done"
checkpoints: {{watch: 'data/*', eval: 'echo {{checkpoint}}', gpus: 0}}
""",
    )
    [train] = [int(x) for x in tt.cli("add", "job.yaml", check=True).stdout.split()]
    c = tt.client()
    note = (
        "checkpoints: 'data/*' matched more than 32 new files at once, so none was evaluated:"
        " watch a narrower pattern"
    )
    wait_until(lambda: note in c.show(train)["notes"], what="the note on the job")
    gate.touch()
    assert c.wait([train], timeout=30)
    assert [j["id"] for j in c.list()] == [train]  # no evaluation job
