"""A made-up but realistic tmuxtrain home for the README screenshot, the snapshot tests and
the refresh benchmark: simulated GPUs, jobs in every state, metric histories and logs, all
with fixed timestamps so pictures of it never change.

It writes through `Store` directly because it fabricates history (start times, metric
samples, finished attempts) that no real run could produce on demand. Nothing here runs a
job or touches tmux.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from tmuxtrain.core.model import JobSpec, JobState
from tmuxtrain.settings import Settings
from tmuxtrain.store import Store

DEMO_NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
MIB = 1
GIB = 1024

DEMO_GPUS = [
    {"name": "Fake A100-SXM4-80GB", "memory": "80GiB", "utilization": 97, "temperature": 71},
    {"name": "Fake A100-SXM4-80GB", "memory": "80GiB", "utilization": 84, "temperature": 66},
    {
        "name": "Fake A100-SXM4-80GB",
        "memory": "80GiB",
        "used": "22GiB",  # somebody else's notebook: not a tmuxtrain job
        "utilization": 41,
        "temperature": 55,
    },
    {"name": "Fake A100-SXM4-80GB", "memory": "80GiB", "utilization": 99, "temperature": 78},
]


@dataclass
class DemoJob:
    """One fabricated job: its spec, where it got to, and how its loss curve looks."""

    name: str
    command: str
    state: JobState
    gpus: tuple[int, ...] = ()
    want_gpus: int = 1
    vram_gib: int | None = 16
    priority: int = 0
    project: str = "default"
    held: bool = False
    attempt: int = 1
    retries: int = 0
    exit_code: int | None = None
    reason: str = ""
    submitted_ago: float = 3600.0
    started_ago: float | None = None
    ran_for: float | None = None  # finished jobs: how long they ran
    epochs: int = 0
    steps: int = 0  # per epoch
    progress: float = 0.0  # share of the run done (running jobs)
    loss0: float = 2.3
    extra: dict[str, float] = field(default_factory=dict)


DEMO_JOBS: list[DemoJob] = [
    DemoJob(
        "prep-data",
        "python3 prep.py --out data/",
        JobState.SUCCEEDED,
        want_gpus=0,
        vram_gib=None,
        submitted_ago=9000,
        started_ago=8990,
        ran_for=190,
    ),
    DemoJob(
        "llama-7b-lora",
        "torchrun --nproc-per-node 1 finetune.py --model llama-7b --lora-r 16",
        JobState.RUNNING,
        gpus=(0,),
        vram_gib=60,
        priority=5,
        project="llm",
        submitted_ago=8800,
        started_ago=8700,
        epochs=3,
        steps=1200,
        progress=0.71,
        loss0=2.9,
        extra={"lr": 2e-4, "grad_norm": 0.82},
    ),
    DemoJob(
        "mlp-lr0.1-s0",
        "python3 train_example.py --epochs 4 --lr 0.1 --seed 0",
        JobState.RUNNING,
        gpus=(1,),
        vram_gib=18,
        project="sweep",
        submitted_ago=4000,
        started_ago=2500,
        epochs=4,
        steps=500,
        progress=0.62,
        loss0=0.72,
        extra={"val_acc": 0.91},
    ),
    DemoJob(
        "mlp-lr0.03-s0",
        "python3 train_example.py --epochs 4 --lr 0.03 --seed 0",
        JobState.RUNNING,
        gpus=(1,),
        vram_gib=18,
        project="sweep",
        submitted_ago=4000,
        started_ago=900,
        epochs=4,
        steps=500,
        progress=0.18,
        loss0=0.74,
        extra={"val_acc": 0.78},
    ),
    DemoJob(
        "vit-b16-augmix",
        "python3 train_vit.py --model vit_b16 --aug augmix --bs 256",
        JobState.RUNNING,
        gpus=(2,),
        vram_gib=20,
        project="vision",
        attempt=2,
        retries=2,
        submitted_ago=7000,
        started_ago=3000,
        steps=20000,
        progress=0.44,
        loss0=6.9,
        extra={"top1": 41.7},
    ),
    DemoJob(
        "bert-large-mlm",
        "python3 run_mlm.py --model bert-large-uncased --max-steps 100000",
        JobState.RUNNING,
        gpus=(3,),
        vram_gib=None,
        project="llm",
        submitted_ago=6000,
        started_ago=5900,
        steps=100000,
        progress=0.36,
        loss0=7.5,
    ),
    DemoJob(
        "mlp-lr0.1-s1",
        "python3 train_example.py --epochs 4 --lr 0.1 --seed 1",
        JobState.PENDING,
        vram_gib=18,
        project="sweep",
        submitted_ago=4000,
        reason="waiting for 1 GPU with 18 GiB free",
    ),
    DemoJob(
        "mlp-lr0.03-s1",
        "python3 train_example.py --epochs 4 --lr 0.03 --seed 1",
        JobState.PENDING,
        vram_gib=18,
        project="sweep",
        submitted_ago=4000,
        reason="queued behind job 7 (mlp-lr0.1-s1)",
    ),
    DemoJob(
        "llama-7b-eval",
        "python3 eval.py --ckpt runs/llama-7b-lora/last.pt",
        JobState.PENDING,
        vram_gib=30,
        project="llm",
        priority=5,
        submitted_ago=8790,
        reason="waiting for job 2 (llama-7b-lora) to succeed",
    ),
    DemoJob(
        "ablation-no-aug",
        "python3 train_vit.py --model vit_b16 --aug none",
        JobState.PENDING,
        vram_gib=20,
        project="vision",
        held=True,
        submitted_ago=2000,
        reason="held (tmuxtrain release to let it start)",
    ),
    DemoJob(
        "resnet50-bs512",
        "python3 train_resnet.py --bs 512",
        JobState.FAILED,
        gpus=(2,),
        vram_gib=40,
        project="vision",
        attempt=2,
        retries=1,
        exit_code=1,
        reason="CUDA out of memory",
        submitted_ago=8000,
        started_ago=3400,
        ran_for=95,
        steps=5000,
        progress=0.02,
        loss0=6.9,
    ),
    DemoJob(
        "mlp-lr0.3-s0",
        "python3 train_example.py --epochs 4 --lr 0.3 --seed 0",
        JobState.SUCCEEDED,
        gpus=(1,),
        vram_gib=18,
        project="sweep",
        submitted_ago=4000,
        started_ago=3900,
        ran_for=1300,
        epochs=4,
        steps=500,
        progress=1.0,
        loss0=0.7,
        extra={"val_acc": 0.88},
    ),
    DemoJob(
        "resnet50-warmup",
        "python3 train_resnet.py --warmup 5",
        JobState.CANCELLED,
        gpus=(0,),
        vram_gib=24,
        project="vision",
        reason="cancelled by user",
        submitted_ago=8900,
        started_ago=8890,
        ran_for=120,
        steps=5000,
        progress=0.05,
        loss0=6.9,
    ),
]


def write_gpu_file(path: str, gpus: Sequence[dict[str, object]]) -> str:
    """A fake GPU YAML file (TMUXTRAIN_GPUS=fake:PATH); returns the variable's value."""
    lines = []
    for g in gpus:
        items = ", ".join(f"{k}: {v}" for k, v in g.items())
        lines.append(f"- {{{items}}}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return f"fake:{path}"


def demo_settings(home: str, gpus: Sequence[dict[str, object]] = DEMO_GPUS) -> Settings:
    """Settings for a demo home: its own GPU file, and a tmux socket nothing listens on."""
    os.makedirs(home, exist_ok=True)
    spec = write_gpu_file(os.path.join(home, "gpus.yaml"), gpus)
    s = Settings(
        home=os.path.abspath(home),
        config_path=None,
        socket=f"tmuxtrain-demo-{os.getpid()}",
        session="tmuxtrain",
        gpus=spec,
    )
    s.ensure_dirs()
    return s


def _loss(d: DemoJob, frac: float, rng: random.Random) -> float:
    floor = d.loss0 * 0.12
    return floor + (d.loss0 - floor) * math.exp(-4.0 * frac) + rng.gauss(0, d.loss0 * 0.012)


def _counters(d: DemoJob, frac: float) -> dict[str, float]:
    """epoch/epochs/step/steps where the job is at `frac` of its run."""
    if d.epochs:
        total = d.epochs * d.steps
        done = min(total, round(frac * total))
        epoch = min(d.epochs, done // d.steps + 1)
        step = done - (epoch - 1) * d.steps
        return {
            "epoch": float(epoch),
            "epochs": float(d.epochs),
            "step": float(step),
            "steps": float(d.steps),
        }
    if d.steps:
        return {"step": float(round(frac * d.steps)), "steps": float(d.steps)}
    return {}


def _log_text(d: DemoJob, points: list[tuple[float, float]]) -> str:
    lines = [f"using GPUs: {','.join(map(str, d.gpus)) or 'none'}", f"$ {d.command}"]
    for frac, loss in points[:: max(1, len(points) // 40)]:
        c = _counters(d, frac)
        if "epoch" in c:
            lines.append(
                f"epoch {c['epoch']:g}/{c['epochs']:g} step {c['step']:g}/{c['steps']:g} "
                f"loss={loss:.4f}"
            )
        elif c:
            lines.append(f"step {c['step']:g}/{c['steps']:g} loss={loss:.4f}")
    if d.state is JobState.FAILED:
        lines += [
            "Traceback (most recent call last):",
            '  File "train_resnet.py", line 88, in <module>',
            "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ]
    if d.state is JobState.CANCELLED:
        lines.append("interrupted")
    if d.state is JobState.SUCCEEDED:
        lines.append("done")
    text = "\n".join(lines) + "\n"
    if d.state is JobState.RUNNING and d.epochs:
        c = _counters(d, d.progress)
        n, total = int(c["step"]), int(c["steps"])
        bar = "█" * (10 * n // total)
        text += f"\repoch {c['epoch']:g}/{c['epochs']:g} {100 * n // total:3d}%|{bar:<10}| "
        text += f"{n}/{total} [01:12<00:44, 6.9it/s, loss={points[-1][1]:.4f}]"
    return text


def build_demo(
    home: str,
    now: float = DEMO_NOW,
    jobs: Sequence[DemoJob] = DEMO_JOBS,
    gpus: Sequence[dict[str, object]] = DEMO_GPUS,
    points: int = 60,
) -> Settings:
    """Fill `home` with the demo: GPUs, jobs, metric histories and logs as of `now`."""
    settings = demo_settings(home, gpus)
    store = Store(settings.db_path)
    try:
        for n, d in enumerate(jobs):
            _add(store, settings, d, now, points, n)
    finally:
        store.close()
    return settings


def _add(store: Store, s: Settings, d: DemoJob, now: float, points: int, seed: int) -> None:
    spec = JobSpec(
        name=d.name,
        command=d.command,
        cwd="/home/you/experiments",
        gpus=d.want_gpus,
        vram_mib=None if d.vram_gib is None else d.vram_gib * GIB,
        priority=d.priority,
        project=d.project,
        retries=d.retries,
        source="jobs.yaml:1",
    )
    [job_id] = store.add_jobs([(spec, (), None)], now - d.submitted_ago, s.logs_dir)
    if d.started_ago is not None:
        started = now - d.started_ago
        store.transition(
            job_id,
            JobState.RUNNING,
            started,
            expect=[JobState.PENDING],
            gpus=d.gpus,
            started_at=started,
            attempt=d.attempt,
            tmux_window=f"@{job_id + 1}",
            tmux_pane=f"%{job_id + 1}",
        )
        end = now if d.ran_for is None else started + d.ran_for
        rng = random.Random(seed)
        done = d.progress if d.state is not JobState.SUCCEEDED else 1.0
        samples: list[tuple[float, float]] = []
        latest: dict[str, float] = {}
        for i in range(1, points + 1):
            frac = done * i / points
            t = started + (end - started) * i / points
            loss = _loss(d, frac, rng)
            samples.append((frac, loss))
            c = _counters(d, frac)
            step = c.get("step", 0.0) + (c.get("epoch", 1.0) - 1) * c.get("steps", 0.0)
            rows = [("loss", loss, step)]
            for k, v in d.extra.items():
                value = v * (0.6 + 0.4 * frac / max(done, 1e-9)) if k != "lr" else v
                rows.append((k, value, step))
            latest = {**c, "loss": loss, **{k: v for k, v, _ in rows if k != "loss"}}
            if d.state is JobState.RUNNING and done > 0:
                elapsed = t - started
                latest["eta_s"] = round(elapsed * (1 - frac) / frac)
            if c:
                store.add_metrics(job_id, rows, latest, t, 0)
        with open(os.path.join(s.logs_dir, f"{job_id}.log"), "w") as f:
            f.write(_log_text(d, samples) if samples else f"$ {d.command}\n")
        if d.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            store.transition(
                job_id,
                d.state,
                end,
                expect=[JobState.RUNNING],
                finished_at=end,
                exit_code=d.exit_code if d.state is not JobState.SUCCEEDED else 0,
                reason=d.reason,
            )
    elif d.state is JobState.CANCELLED:
        store.transition(
            job_id,
            JobState.CANCELLED,
            now,
            expect=[JobState.PENDING],
            finished_at=now,
            reason=d.reason,
        )
    elif d.state is JobState.PENDING:
        store.update(job_id, held=d.held, attempt=d.attempt)
        store.set_reasons({job_id: d.reason})


def build_bench(
    home: str,
    jobs: int = 1000,
    gpus: int = 8,
    now: float = DEMO_NOW,
    pending: int | None = None,
) -> Settings:
    """A big queue for the refresh benchmark: `jobs` jobs on `gpus` GPUs, two running per
    GPU with metric histories, `pending` (default a fifth) waiting, the rest finished."""
    gpu_list: list[dict[str, object]] = [
        {"name": "Fake H100 80GB HBM3", "memory": "80GiB", "utilization": 90, "temperature": 60}
        for _ in range(gpus)
    ]
    settings = demo_settings(home, gpu_list)
    store = Store(settings.db_path)
    try:
        specs = [
            JobSpec(
                name=f"sweep-lr{i % 7}e-4-s{i}",
                command=f"python3 train.py --lr {i % 7}e-4 --seed {i}",
                cwd="/home/you/experiments",
                gpus=1,
                vram_mib=30 * GIB,
                project=f"p{i % 3}",
            )
            for i in range(jobs)
        ]
        ids = store.add_jobs([(s, (), None) for s in specs], now - 86400, settings.logs_dir)
        running = ids[: min(len(ids), 2 * gpus)]
        n_pending = jobs // 5 if pending is None else pending
        waiting = ids[len(running) : len(running) + n_pending]
        finished = ids[len(running) + len(waiting) :]
        for n, job_id in enumerate(running):
            start = now - 3600 - n
            store.transition(
                job_id,
                JobState.RUNNING,
                start,
                expect=[JobState.PENDING],
                gpus=(n % gpus,),
                started_at=start,
                tmux_window=f"@{job_id}",
            )
            for k in range(20):
                rows = [("loss", 2 / (1 + k + i / 10), float(k * 100 + i * 10)) for i in range(10)]
                latest = {"loss": rows[-1][1], "step": rows[-1][2], "steps": 1e4, "eta_s": 600.0}
                store.add_metrics(job_id, rows, latest, start + k * 60, 0)
            with open(os.path.join(settings.logs_dir, f"{job_id}.log"), "w") as f:
                f.writelines(f"step {k}/10000 loss={1 / (k + 1):.4f}\n" for k in range(500))
        store.set_reasons({i: "waiting for 1 GPU with 30 GiB free" for i in waiting})
        for n, job_id in enumerate(finished):
            start = now - 80000 + n * 60
            store.transition(
                job_id,
                JobState.RUNNING,
                start,
                expect=[JobState.PENDING],
                gpus=(n % gpus,),
                started_at=start,
            )
            state = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)[n % 3]
            store.transition(
                job_id,
                state,
                start + 50,
                expect=[JobState.RUNNING],
                finished_at=start + 50,
                exit_code={JobState.SUCCEEDED: 0, JobState.FAILED: 1}.get(state),
                metrics={"loss": 0.1 + n / 1e4, "epoch": 3.0, "epochs": 3.0},
            )
    finally:
        store.close()
    return settings
