"""The dashboard says where a job's VRAM ask came from when it is not its declaration."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.conftest import Env
from tests.ui.conftest import run, screen_text, settle, until
from tmuxtrain.core.model import Job, JobSpec, JobState
from tmuxtrain.store import Store
from tmuxtrain.store.learning import set_learned
from tmuxtrain.ui import view
from tmuxtrain.ui.app import make_app


def test_the_job_detail_says_learned(tt: Env) -> None:
    """A waiting sweep job whose ask was learned: `4.5 GiB each (learned)` in its detail."""
    client = tt.client()
    spec = JobSpec(name="sweep-lr1", command="true", cwd=str(tt.root), sweep="sw")
    [a] = client.add_specs([spec], start=False)
    store = Store(tt.settings.db_path)
    try:
        set_learned(store, {a: 4608}, {a: 4096}, 0.0)
    finally:
        store.close()
    app = make_app(client, refresh_s=0.2)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await until(pilot, lambda: "4.5 GiB each (learned)" in screen_text(app), what="learned")

    run(app, body)


def test_vram_text() -> None:
    def job(**kw: Any) -> Job:
        return Job(1, JobSpec(name="j", command="x", cwd="/"), JobState.PENDING, **kw)

    assert view.vram_text(job()) == "exclusive"
    assert (
        view.vram_text(job(vram_source="learned", vram_request_mib=4608))
        == "4.5 GiB each (learned)"
    )
    assert (
        view.vram_text(job(vram_source="raised", vram_request_mib=40960)) == "40 GiB each (raised)"
    )
