"""What one dashboard refresh costs: `measure_refresh(client, n)` -> seconds per refresh.

A refresh is the worker's read (`DataSource.fetch`: jobs when something was committed, GPUs,
the scheduler, the selected job's history and log) plus the UI thread's patching of the
widgets (`TmuxtrainApp.apply_snapshot`). Before each one, a second connection does what a
busy scheduler does every tick, updating the metrics of every running job, so every refresh
re-reads all jobs and diffs them: the worst case, not the idle one.

    python -m tests.ui.refresh_bench --jobs 1000 --gpus 8 --refreshes 30
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from typing import Any

from tmuxtrain.api import Client
from tmuxtrain.core.model import JobState
from tmuxtrain.store import Store


def measure_refresh_detail(
    client: Client, n: int = 20, *, churn: bool = True, size: tuple[int, int] = (160, 48)
) -> dict[str, Any]:
    """Run the dashboard headless on `client`'s home and time `n` refreshes.

    Returns seconds: `mean`, `median`, `max` of fetch + apply, and `fetch`, `apply` means;
    `rows_formatted`: rows the table re-formatted per refresh (the churned ones, not all).
    """
    from tmuxtrain.ui.app import make_app

    app = make_app(client, clock=time.time, refresh_s=None)
    result: dict[str, Any] = {}

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            while app.loads < 1:
                await pilot.pause(0.01)
            await pilot.pause(0.05)
            writer = Store(client.settings.db_path)
            running = [j.id for j in writer.jobs([JobState.RUNNING])]
            fetch_s, apply_s, formatted = [], [], []
            for i in range(n):
                if churn:
                    for job_id in running:
                        latest = {"loss": 1.0 / (i + 2), "step": float(i), "steps": 1e4}
                        writer.add_metrics(job_id, [("loss", latest["loss"], i)], latest, i, 0)
                t0 = time.perf_counter()
                snap = app.source.fetch(app.table.selected_id)
                t1 = time.perf_counter()
                app.apply_snapshot(snap, app.table.selected_id)
                t2 = time.perf_counter()
                fetch_s.append(t1 - t0)
                apply_s.append(t2 - t1)
                formatted.append(app.table.rows_formatted)
                await pilot.pause()  # let it render, as between real ticks
            writer.close()
            total = [f + a for f, a in zip(fetch_s, apply_s, strict=True)]
            result.update(
                mean=statistics.fmean(total),
                median=statistics.median(total),
                max=max(total),
                fetch=statistics.fmean(fetch_s),
                apply=statistics.fmean(apply_s),
                rows_formatted=statistics.fmean(formatted),
                rows=app.table.row_count,
                active=sum(1 for j in app.jobs if not j.state.finished),
            )

    try:
        asyncio.run(run())
    finally:
        app.source.close()
    return result


def measure_refresh(client: Client, n: int = 20) -> float:
    """Mean seconds of work per refresh (fetch + apply) over `n` busy refreshes."""
    return float(measure_refresh_detail(client, n)["mean"])


def main(argv: list[str] | None = None) -> int:
    from tests.ui.demo_state import build_bench

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--refreshes", type=int, default=30)
    p.add_argument(
        "--pending", type=int, default=None, help="pending jobs (default: a fifth of them)"
    )
    p.add_argument(
        "--gpu-source",
        default=None,
        help="read GPUs from this TMUXTRAIN_GPUS value (e.g. nvml) instead of simulated ones",
    )
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = build_bench(f"{tmp}/home", jobs=a.jobs, gpus=a.gpus, pending=a.pending)
        if a.gpu_source:
            settings = dataclasses.replace(settings, gpus=a.gpu_source)
        r = measure_refresh_detail(Client(settings), a.refreshes)
    print(
        f"{a.jobs} jobs ({r['active']} pending or running), {a.gpus} GPUs, "
        f"{a.refreshes} busy refreshes: "
        f"{r['mean'] * 1e3:.1f} ms mean, {r['median'] * 1e3:.1f} ms median, "
        f"{r['max'] * 1e3:.1f} ms max per refresh "
        f"(read {r['fetch'] * 1e3:.1f} ms in the worker, apply {r['apply'] * 1e3:.1f} ms on the "
        f"UI thread; {r['rows_formatted']:.0f} of {r['rows']} rows re-formatted)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
