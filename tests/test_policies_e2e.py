"""The scheduling policies of issue 15 end to end: the real CLI, tmux, scheduler process and
job processes, on simulated GPUs (each policy was proven first in
tests/test_simulation_policies.py)."""

from __future__ import annotations

import json

from tests.conftest import Env
from tests.test_daily import config
from tests.test_scheduler import add, wait_state


def test_fair_share_alternates_by_recent_usage_and_status_shows_it(tt: Env) -> None:
    """The issue's queue on one GPU: alpha's six jobs, then beta's three once alpha's first
    runs. Beta's first job comes right after alpha's first, and they alternate while both
    have work. (Each job lasts at least the half-life, so the last job's project has used
    more than all earlier jobs together, jitter or not.)"""
    config(tt, "policy: fair-share\nfair_share_half_life: 1s\n")
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    order, gate = tt.root / "order", tt.root / "gate"
    first = f"echo alpha >> {order}; until [ -e {gate} ]; do sleep 0.05; done; sleep 1"
    alpha = add(tt, "--project", "alpha", "--no-start", "--", first)
    for _ in range(5):
        alpha += add(
            tt, "--project", "alpha", "--no-start", "--", f"echo alpha >> {order}; sleep 1"
        )
    tt.client().up()
    wait_state(tt, alpha[0], "running")
    beta = [
        i
        for _ in range(3)
        for i in add(tt, "--project", "beta", "--", f"echo beta >> {order}; sleep 1")
    ]
    gate.touch()
    assert tt.client().wait(alpha + beta, timeout=90)
    assert order.read_text().split() == ["alpha", "beta"] * 3 + ["alpha"] * 3

    st = json.loads(tt.cli("status", "--json", check=True).stdout)
    projects = {p["project"]: p for p in st["projects"]}
    assert set(projects) == {"alpha", "beta"}
    assert projects["alpha"]["share"] == projects["beta"]["share"] == 1
    assert projects["alpha"]["usage_pct"] > 0 and projects["beta"]["usage_pct"] > 0
    assert abs(projects["alpha"]["usage_pct"] + projects["beta"]["usage_pct"] - 100) < 0.5
    text = tt.cli("status", check=True).stdout
    assert "fair-share" in text
    lines = [line.split() for line in text.splitlines()]
    assert any(words[:2] == ["alpha", "1"] for words in lines), text
    assert any(words[:2] == ["beta", "1"] for words in lines), text


def test_backfill_by_time_limits(tt: Env) -> None:
    """The issue's queue on 2 simulated GPUs: A (1 GPU, 60 s limit) runs; B (2 GPUs) waits
    at the head, its reason saying when A's limit frees its GPUs; C (1 GPU, 5 s limit)
    starts beside A at once, since it ends before that; D (no limit) would delay B, so it
    waits for B."""
    config(tt, "policy: priority\nbackfill: true\n")
    tt.set("TMUXTRAIN_GPUS", "fake:2x24GiB")
    gate = tt.root / "gate"
    hold = f"until [ -e {gate} ]; do sleep 0.05; done"
    [a] = add(tt, "--timeout", "60s", "--no-start", "--", hold)
    [b] = add(tt, "--gpus", "2", "--no-start", "--", "sleep 0.5")
    [c] = add(tt, "--timeout", "5s", "--no-start", "--", "sleep 0.5")
    [d] = add(tt, "--no-start", "--", "sleep 0.5")
    tt.client().up()
    wait_state(tt, c, "succeeded", timeout=30)
    assert wait_state(tt, a, "running")
    shown = {j["id"]: j for j in json.loads(tt.cli("ls", "--json", check=True).stdout)}
    assert shown[b]["state"] == shown[d]["state"] == "pending"
    assert "expected to start by " in shown[b]["reason"], shown[b]["reason"]
    assert shown[d]["reason"] == f"GPU 0,1 reserved for job {b} (sleep) at the head of the queue"
    gate.touch()
    assert tt.client().wait([a, b, c, d], timeout=60)
    jobs = {j["id"]: j for j in json.loads(tt.cli("ls", "--json", check=True).stdout)}
    assert jobs[c]["started_at"] <= jobs[a]["finished_at"] <= jobs[b]["started_at"]
    assert jobs[b]["finished_at"] <= jobs[d]["started_at"]


def test_a_lab_morning_in_miniature(tt: Env) -> None:
    """The simulated day's mix in small, for real: a sweep of shared 1-GPU jobs, a 2-GPU
    training of another project and short debug runs of a third, all with time limits, on
    2 simulated GPUs under fair-share with backfill. Everything ends; the 2-GPU job is not
    left until the sweep is done; status shows each project's use of the GPUs."""
    config(tt, "policy: fair-share\nbackfill: true\nfair_share_half_life: 1h\n")
    tt.set("TMUXTRAIN_GPUS", "fake:2x24GiB")
    order = tt.root / "order"
    sweep = [
        i
        for k in range(6)
        for i in add(
            tt, "--project", "sweep", "--vram", "8GiB", "--timeout", "20s", "--no-start",
            "--name", f"sweep{k}", "--", f"echo sweep >> {order}; sleep 0.3",
        )
    ]  # fmt: skip
    [big] = add(
        tt, "--project", "big", "--gpus", "2", "--timeout", "20s", "--no-start", "--",
        f"echo big >> {order}; sleep 0.5",
    )  # fmt: skip
    debug = [
        i
        for _ in range(2)
        for i in add(
            tt,
            "--project",
            "debug",
            "--timeout",
            "5s",
            "--no-start",
            "--",
            f"echo debug >> {order}; sleep 0.2",
        )
    ]
    tt.client().up()
    assert tt.client().wait([*sweep, big, *debug], timeout=90)
    started = order.read_text().split()
    assert sorted(started) == sorted(["sweep"] * 6 + ["big"] + ["debug"] * 2)
    assert started.index("big") < len(started) - 1 - started[::-1].index("sweep"), started
    st = json.loads(tt.cli("status", "--json", check=True).stdout)
    projects = {p["project"]: p for p in st["projects"]}
    assert set(projects) == {"sweep", "big", "debug"}
    assert all(p["usage_gpu_s"] > 0 and p["pending"] == 0 for p in projects.values())
    assert abs(sum(p["usage_pct"] for p in projects.values()) - 100) < 0.5
