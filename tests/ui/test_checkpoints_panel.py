"""The dashboard shows the selected job's checkpoints and their evaluation scores: live,
from a real job writing Hugging Face checkpoints under a real scheduler, and as a picture
of a fabricated home (frozen clock)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.conftest import Env, wait_until
from tests.test_checkpoint_layouts import EVALUATE, SAVE, add
from tests.ui.conftest import run, screen_text, settle, until
from tests.ui.demo_state import DEMO_NOW, demo_settings
from tmuxtrain.api import Client
from tmuxtrain.core.checkpoints import eval_spec
from tmuxtrain.core.model import CheckpointSpec, JobSpec, JobState
from tmuxtrain.settings import Settings
from tmuxtrain.store import Store
from tmuxtrain.store.checkpoints import add_checkpoint_eval
from tmuxtrain.ui.app import TmuxtrainApp, make_app


def select(app: TmuxtrainApp, job_id: int) -> None:
    app.table.move_cursor(row=app.table.get_row_index(str(job_id)))


def test_live_checkpoints_and_scores_of_a_real_run(tt: Env) -> None:
    out = tt.root / "out"
    [train] = add(
        tt,
        f"""
name: hf
gpus: 1
vram: 4GiB
command: {SAVE} hf {out} --saves 2 --every 250 --pause 0.1
checkpoints: {{watch: 'out/checkpoint-*', eval: '{EVALUATE} {{checkpoint}} 1', gpus: 1, vram: 2GiB, keep_best: eval_loss}}
""",
    )
    client = tt.client()
    wait_until(lambda: client.show(train)["checkpoints"], 60, what="a first checkpoint")
    app = make_app(client, refresh_s=0.2)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        select(app, train)
        await settle(pilot)
        await until(
            pilot,
            lambda: (
                "★ checkpoint-250  eval_loss 0.25" in screen_text(app)
                and "✓ checkpoint-500  eval_loss 0.5" in screen_text(app)
            ),
            60,
            "both checkpoints scored on screen",
        )
        text = screen_text(app)
        assert "2 checkpoints · 2 scored" in text
        # Another job selected: its own detail, none of hf's checkpoints.
        [other] = client.add_command("true", name="plain", gpus=0)
        await until(pilot, lambda: other in app.by_id, 10, "the new job in the table")
        select(app, other)
        await settle(pilot)
        assert app.info.border_title == f"job {other}"
        assert "checkpoint" not in str(app.info.render())

    run(app, body)


def fabricated_home(root: Path) -> tuple[Settings, int]:
    """A finished run with three checkpoints: one scored best, one scored, one evaluating."""
    settings = demo_settings(str(root / "home"), [{"name": "Fake A100", "memory": "80GiB"}])
    store = Store(settings.db_path)
    now = DEMO_NOW
    ck = CheckpointSpec(
        watch="out/checkpoint-*", eval="python eval.py {checkpoint}", keep_best="eval_loss"
    )
    spec = JobSpec(
        name="gpt2-sft", command="python train.py --save_steps 500", cwd="/w", checkpoints=ck
    )
    [train] = store.add_jobs([(spec, (), None)], now - 3000, settings.logs_dir)
    store.transition(train, JobState.RUNNING, now - 2900, expect=[JobState.PENDING],
                     gpus=(0,), started_at=now - 2900)  # fmt: skip
    store.transition(train, JobState.SUCCEEDED, now - 100, expect=[JobState.RUNNING],
                     finished_at=now - 100, exit_code=0)  # fmt: skip
    scores = [0.412, 0.377, None]
    for n, score in enumerate(scores):
        path = f"/w/out/checkpoint-{500 * (n + 1)}"
        t = now - 2000 + 900 * n
        ev = add_checkpoint_eval(
            store, train, path, 1, (10, t), eval_spec(spec, path), None, t, settings.logs_dir
        )
        assert ev is not None
        store.transition(ev, JobState.RUNNING, t + 5, expect=[JobState.PENDING],
                         gpus=(0,), started_at=t + 5)  # fmt: skip
        if score is not None:
            store.add_metrics(ev, [("eval_loss", score, None)], {"eval_loss": score}, t + 60, 0)
            store.transition(ev, JobState.SUCCEEDED, t + 60, expect=[JobState.RUNNING],
                             finished_at=t + 60, exit_code=0)  # fmt: skip
    store.close()
    return settings, train


@pytest.fixture
def checkpoint_app(tmp_path: Path) -> Any:
    settings, train = fabricated_home(tmp_path)
    client = Client(settings)
    app = make_app(client, clock=lambda: DEMO_NOW, refresh_s=None)
    yield app, train
    client.close()


def test_checkpoints_shown_under_the_job(checkpoint_app: tuple[TmuxtrainApp, int]) -> None:
    app, train = checkpoint_app

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        select(app, train)
        await settle(pilot)
        text = screen_text(app)
        assert "3 checkpoints · 2 scored" in text
        assert "✓ checkpoint-500  eval_loss 0.412" in text
        assert "★ checkpoint-1000  eval_loss 0.377" in text
        assert "▶ checkpoint-1500  running" in text

    run(app, body, size=(120, 36))


def test_checkpoints_picture(
    snap_compare: Callable[..., bool], checkpoint_app: tuple[TmuxtrainApp, int]
) -> None:
    app, train = checkpoint_app

    async def select_train(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        select(app, train)
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=select_train)
