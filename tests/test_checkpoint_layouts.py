"""Checkpoints as real frameworks lay them out, written over time by a real job in a real
tmux window on simulated GPUs: Hugging Face's checkpoint-STEP/ directories, Lightning's
epoch files with last.ckpt rewritten in place or a symlink; `after: [job.evals]`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Env, wait_until
from tmuxtrain.api import Client

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
PY = sys.executable
SAVE = f"{PY} {FIXTURES / 'save.py'}"
EVALUATE = f"{PY} {FIXTURES / 'evaluate.py'}"


def add(tt: Env, text: str) -> list[int]:
    tt.write("job.yaml", text)
    return [int(x) for x in tt.cli("add", "job.yaml", check=True).stdout.split()]


def checkpoints(c: Client, job: int) -> list[dict[str, Any]]:
    cks: list[dict[str, Any]] = c.show(job)["checkpoints"]
    return cks


def seen(c: Client, job: int, n: int) -> Callable[[], bool]:
    return lambda: len(checkpoints(c, job)) == n


def all_evaluated(c: Client, job: int, n: int) -> list[dict[str, Any]] | None:
    """`n` checkpoints whose evaluations ended, the scores of those that succeeded read
    (what a job printed last reaches its metrics a moment after it ended)."""
    cks = checkpoints(c, job)
    if len(cks) == n and all(
        ck["eval_state"] == "failed" or (ck["eval_state"] == "succeeded" and ck["metrics"])
        for ck in cks
    ):
        return cks
    return None


def test_hugging_face_directories_are_evaluated_once_complete(tt: Env) -> None:
    out, gates = tt.root / "out", tt.root / "gates"
    gates.mkdir()
    # The pause before trainer_state.json is longer than the settle time: a directory that
    # merely stopped changing is not complete yet.
    [train] = add(
        tt,
        f"""
name: hf
gpus: 1
vram: 4GiB
command: {SAVE} hf {out} --saves 2 --every 250 --pause 2.5 --gate {gates}
checkpoints: {{watch: 'out/checkpoint-*', eval: '{EVALUATE} {{checkpoint}}', gpus: 1, vram: 2GiB, keep_best: eval_loss}}
""",
    )
    c = tt.client()
    for k in (1, 2):
        wait_until(seen(c, train, k), 60, what=f"checkpoint {k}")
        (gates / f"go-{k}").touch()
    cks = wait_until(lambda: all_evaluated(c, train, 2), 60, what="2 evaluations")
    assert [ck["path"] for ck in cks] == [str(out / "checkpoint-250"), str(out / "checkpoint-500")]
    # Each evaluation read a whole checkpoint (evaluate.py fails on a missing file).
    assert [ck["eval_state"] for ck in cks] == ["succeeded", "succeeded"]
    assert [ck["metrics"]["eval_loss"] for ck in cks] == [0.25, 0.5]
    assert [ck["best"] for ck in cks] == [True, False]
    evals = sorted((j["name"], j["gpus_requested"]) for j in c.list() if j["parent_id"] == train)
    assert evals == [("hf-eval-checkpoint-250", 1), ("hf-eval-checkpoint-500", 1)]


def test_lightning_last_ckpt_rewrites_and_symlinks(tt: Env) -> None:
    out, gates = tt.root / "ck", tt.root / "gates"
    gates.mkdir()
    [train] = add(
        tt,
        f"""
name: pl
gpus: 1
vram: 4GiB
command: {SAVE} lightning {out} --saves 3 --gate {gates}
checkpoints: {{watch: 'ck/*/*.ckpt', eval: '{EVALUATE} {{checkpoint}}', gpus: 0}}
""",
    )
    c = tt.client()
    # Per epoch: copy/epoch=E-step=S.ckpt, a new version of copy/last.ckpt, and
    # link/epoch=E-step=S.ckpt (link/last.ckpt is a symlink to it, not a checkpoint).
    for epoch in (1, 2, 3):
        wait_until(seen(c, train, 3 * epoch), 60, what=f"epoch {epoch}'s checkpoints")
        (gates / f"go-{epoch}").touch()
    cks = wait_until(lambda: all_evaluated(c, train, 9), 60, what="9 evaluations")
    assert all(ck["eval_state"] == "succeeded" for ck in cks)
    got = sorted((str(Path(ck["path"]).relative_to(out)), ck["version"]) for ck in cks)
    files = [f"epoch={e}-step={10 * (e + 1)}.ckpt" for e in range(3)]
    assert got == sorted(
        [(f"copy/{f}", 1) for f in files]
        + [(f"link/{f}", 1) for f in files]
        + [("copy/last.ckpt", v) for v in (1, 2, 3)]
    )
    for ck in cks:
        if Path(ck["path"]).name != "last.ckpt":
            epoch = int(Path(ck["path"]).name.split("-")[0].split("=")[1])
            assert ck["metrics"]["val_loss"] == round(0.1 * (epoch + 1), 2)
    names = sorted(j["name"] for j in c.list() if j["parent_id"] == train)
    assert names == sorted(
        [f"pl-eval-{f}" for f in files] * 2
        + ["pl-eval-last.ckpt", "pl-eval-last.ckpt@2", "pl-eval-last.ckpt@3"]
    )
    shown = tt.cli("show", str(train), check=True).stdout
    assert f"checkpoint {out}/copy/last.ckpt (version 3): eval job" in shown
    # A restarted scheduler evaluates nothing again: each version is recorded.
    tt.cli("down", check=True)
    tt.cli("up", check=True)
    tt.cli("add", "--gpus", "0", "--", "true", check=True)
    assert c.wait(timeout=30)
    assert len([j for j in c.list() if j["parent_id"] == train]) == 9


def test_after_evals_waits_for_the_last_evaluation(tt: Env) -> None:
    out = tt.root / "out"
    # The last checkpoint is saved as the job exits: it is found, settles and is evaluated
    # (slowly) after its job succeeded. `compare` waits for all of it; `next` does not.
    ids = add(
        tt,
        f"""
jobs:
  - name: compare
    gpus: 0
    after: [hf.evals]
    command: {PY} {FIXTURES / "compare.py"} hf
  - name: hf
    gpus: 1
    vram: 4GiB
    command: {SAVE} hf {out} --saves 2 --every 10 --pause 0.1
    checkpoints: {{watch: 'out/checkpoint-*', eval: '{EVALUATE} {{checkpoint}} 3', gpus: 0}}
""",
    )
    compare, train = ids
    c = tt.client()
    shown = c.show(compare)
    assert shown["after"] == [train] and shown["after_evals"] == [train]
    waiting = wait_until(
        lambda: (j := c.show(compare))["reason"].startswith("waiting for the checkpoint") and j,
        60,
        what="compare waiting for the evaluations",
    )
    assert waiting["state"] == "pending" and f"job {train} (hf)" in waiting["reason"]
    wait_until(lambda: c.show(compare)["state"] == "succeeded", 90, what="compare to run")
    evals = [j for j in c.list() if j["parent_id"] == train]
    assert len(evals) == 2 and all(j["state"] == "succeeded" for j in evals)
    started = c.show(compare)["started_at"]
    assert started >= max(j["finished_at"] for j in evals) >= c.show(train)["finished_at"]
    # It started once the scores were in, not only once the evaluations had exited.
    assert "scores 0.01 0.02" in tt.cli("log", str(compare), check=True).stdout


def test_after_evals_of_a_job_without_checkpoints_is_refused(tt: Env) -> None:
    tt.write("job.yaml", "jobs:\n  - {name: a, gpus: 0, command: 'true'}\n"
             "  - {name: b, gpus: 0, command: 'true', after: [a.evals]}\n")  # fmt: skip
    r = tt.cli("add", "job.yaml")
    assert r.returncode == 2 and r.stdout == ""
    assert "job.yaml:3: after: 'a.evals': job 'a' has no checkpoints: to evaluate" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert tt.client().list() == []


def test_edit_after_evals(tt: Env) -> None:
    tt.write(
        "job.yaml",
        "jobs:\n  - {name: a, gpus: 0, command: 'true', hold: true,"
        " checkpoints: {watch: '*.pt', eval: 'true {checkpoint}', gpus: 0}}\n"
        "  - {name: b, gpus: 0, command: 'true', hold: true}\n",
    )
    a, b = (int(x) for x in tt.cli("add", "--no-start", "job.yaml", check=True).stdout.split())
    tt.cli("edit", str(b), "--after", "a.evals", check=True)
    assert (tt.client().show(b)["after"], tt.client().show(b)["after_evals"]) == ([a], [a])
    r = tt.cli("edit", str(a), "--after", f"{b}.evals")
    assert r.returncode == 2 and f"'{b}.evals': job {b} has no checkpoints:" in r.stderr
    tt.cli("edit", str(b), "--after", "a", check=True)
    assert (tt.client().show(b)["after"], tt.client().show(b)["after_evals"]) == ([a], [])
