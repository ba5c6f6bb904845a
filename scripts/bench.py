#!/usr/bin/env python3
"""tmuxtrain benchmarks (issue 5): turnaround against task-spooler, promotion latency,
submission, idle cost, the scheduling policy, a simulated day of a lab under each queue
policy (issue 15), log parsing and the dashboard refresh.

    .venv/bin/python scripts/bench.py --quick          # a reduced run, under two minutes
    .venv/bin/python scripts/bench.py                  # the full run (several minutes)
    .venv/bin/python scripts/bench.py --only turnaround --json

Every benchmark that runs the real thing gets its own TMUXTRAIN_HOME, its own tmux server
(`tmux -L tmuxtrain-bench-...`, killed at the end) and simulated GPUs; the user's tmux server
and state are never touched. Only processes this script started are ended, by pid.
Results go to stdout as one table (or JSON with --json); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from tmuxtrain.api import Client
from tmuxtrain.core.model import Config, GpuInfo, Job, JobSpec, JobState
from tmuxtrain.runners.tmux import Tmux
from tmuxtrain.settings import Settings, from_env
from tmuxtrain.store import Store

SECTIONS = ("turnaround", "promotion", "submit", "idle", "decide", "labday", "logparse", "ui")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1
GIB = 1024
MB = 1_000_000  # throughput is in decimal MB/s, like dd and fio


# ---- results ------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured figure: `value` in `unit`, its target, and what limits it."""

    section: str
    what: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target (context figures, peers)
    limit: str = ""
    detail: str = ""

    def shown(self) -> str:
        """The value with its unit, in a readable precision."""
        v = self.value
        if self.unit == "x":
            return f"{v:.1f}x"
        if self.unit == "%":
            return f"{v:.2f} %" if v >= 0.1 else f"{v:.3f} %"
        text = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return f"{text} {self.unit}"


def log(msg: str) -> None:
    """Progress on stderr, so stdout stays the table or JSON."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def table(rows: Sequence[Row]) -> str:
    """Rows as a plain-text table (also valid Markdown)."""
    head = ["section", "what", "value", "target", "ok", "limited by / detail"]
    body = [
        [
            r.section,
            r.what,
            r.shown(),
            r.target or "-",
            {True: "PASS", False: "FAIL", None: "-"}[r.ok],
            "; ".join(x for x in (r.limit, r.detail) if x),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])  # the last column is free text: do not pad it

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


# ---- an isolated tmuxtrain installation -----------------------------------------------------


def tmuxtrain_argv() -> list[str]:
    """The `tmuxtrain` console script of this interpreter's environment, as a user runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "tmuxtrain")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "tmuxtrain.cli"]


class Home:
    """A private TMUXTRAIN_HOME, tmux socket, config and GPU source; `close` ends it all."""

    def __init__(self, gpus: str, config: str = "") -> None:
        self.root = tempfile.mkdtemp(prefix="tmuxtrain-bench-")
        self.socket = f"tmuxtrain-bench-{uuid.uuid4().hex[:10]}"
        cfg = os.path.join(self.root, "config.yaml")
        with open(cfg, "w") as f:
            f.write("headroom: 0\nkeep_finished_windows: 20\n" + config)
        self.env = dict(os.environ)
        for k in ("TMUX", "TMUX_PANE"):
            self.env.pop(k, None)
        self.env.update(
            TMUXTRAIN_HOME=os.path.join(self.root, "home"),
            TMUXTRAIN_TMUX_SOCKET=self.socket,
            TMUXTRAIN_GPUS=gpus,
            TMUXTRAIN_CONFIG=cfg,
            TMUXTRAIN_SESSION="tmuxtrain",
        )
        self.settings: Settings = from_env(self.env)
        self.client = Client(self.settings)  # its store: a reader connection of our own
        self.scheduler: int | None = None

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> tuple[float, str]:
        """Run the real `tmuxtrain` command; (wall seconds, stdout)."""
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*tmuxtrain_argv(), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        dt = time.perf_counter() - t0
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmuxtrain {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return dt, proc.stdout

    def up(self) -> float:
        """Start the scheduler (`tmuxtrain up`); returns the seconds it took."""
        dt, _ = self.cli("up")
        self.scheduler = self.scheduler_pid()
        return dt

    def scheduler_pid(self) -> int:
        """The scheduler's pid, from `tmuxtrain status --json`."""
        _, out = self.cli("status", "--json")
        pid = json.loads(out)["scheduler"]["pid"]
        if not pid:
            raise RuntimeError("the scheduler is not running")
        return int(pid)

    @property
    def store(self) -> Store:
        """A reader connection of our own (WAL: never blocks the scheduler)."""
        return self.client.store

    def write(self, name: str, doc: Any) -> str:
        """A job file (JSON is YAML) in the root; returns its path."""
        path = os.path.join(self.root, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def wait_counts(
        self, done: Callable[[dict[str, int]], bool], timeout: float, poll: float = 0.005
    ) -> float:
        """Poll the job counts until `done(counts)`; returns the wall time (time.time())."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.store.counts()
            if done(c):
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g}s; counts {c}")
            time.sleep(poll)

    def tmux_server_pid(self) -> int | None:
        """Our private tmux server's pid (never the default server's)."""
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "display-message", "-p", "#{pid}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return int(proc.stdout.strip()) if proc.stdout.strip().isdigit() else None

    def close(self) -> None:
        """Stop our scheduler (it runs detached, by its pid), kill our tmux server, then
        whatever our jobs left, found by their run tokens."""
        from tmuxtrain.procs import tagged
        from tmuxtrain.runners.base import run_token

        tokens: list[str] = []
        with contextlib.suppress(Exception):
            tokens = [
                run_token(self.settings.home, job.id, job.attempt)
                for job in self.store.jobs([JobState.RUNNING])
            ]
        if self.scheduler:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(self.scheduler)
                proc.terminate()
                try:
                    proc.wait(5)
                except psutil.TimeoutExpired:
                    proc.kill()
        kill_tmux_server(self.socket)
        for pid in tagged(*tokens) if tokens else ():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.client.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Home:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kill_tmux_server(socket: str) -> None:
    """`tmux -L socket kill-server`, then remove the socket file it leaves in tmux's folder."""
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    folder = os.path.join(os.environ.get("TMUX_TMPDIR") or "/tmp", f"tmux-{os.getuid()}")
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(folder, socket))


def cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of a process, including the children it waited for (tmux clients)."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


# ---- 1. turnaround against task-spooler --------------------------------------------------


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (every process, every core)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def tsp_makespan(n: int, slots: int = 4) -> tuple[float, float]:
    """(seconds, machine CPU seconds) for task-spooler to run `n` `true` jobs, from the first
    `tsp true` to the last finish (polled every 5 ms), on its own socket in a temp dir."""
    tsp = shutil.which("tsp") or shutil.which("ts")
    if tsp is None:
        raise RuntimeError("task-spooler missing: apt-get install -y task-spooler")
    tmp = tempfile.mkdtemp(prefix="tmuxtrain-bench-tsp-")
    env = {**os.environ, "TS_SOCKET": os.path.join(tmp, "socket"), "TMPDIR": tmp}
    env["TS_MAXFINISHED"] = str(n + 10)

    def run(*args: str) -> str:
        proc = subprocess.run([tsp, *args], env=env, capture_output=True, text=True, check=True)
        return proc.stdout

    try:
        run("-S", str(slots))  # starts its server, like `tmuxtrain up`
        c0 = machine_cpu_s()
        t0 = time.time()
        for _ in range(n):
            run("true")
        while run().count(" finished ") < n:
            time.sleep(0.005)
        return time.time() - t0, machine_cpu_s() - c0
    finally:
        subprocess.run([tsp, "-K"], env=env, capture_output=True, check=False)  # its server
        shutil.rmtree(tmp, ignore_errors=True)


def tmux_window_floor(n: int) -> tuple[float, float]:
    """Seconds per `tmux new-window -d -- /bin/sh -c true` on a private server, one after
    another: (a `tmux` process per window, as a shell script would; over one control-mode
    connection, as the scheduler does). The second is what a tmux-native runner pays at
    least once per job."""
    sock = f"tmuxtrain-bench-floor-{uuid.uuid4().hex[:8]}"
    base = ["tmux", "-L", sock]
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    argv = ["new-window", "-d", "-t", "=f:", "--", "/bin/sh", "-c", "true"]
    subprocess.run([*base, "new-session", "-d", "-s", "f"], env=env, check=True)
    runner = Tmux(sock, "f")
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run([*base, *argv], env=env, check=True, capture_output=True)
        per_process = (time.perf_counter() - t0) / n
        if not runner.connect():
            raise RuntimeError("tmux control mode is not available")
        t0 = time.perf_counter()
        for _ in range(n):
            runner.cmd(*argv)
        return per_process, (time.perf_counter() - t0) / n
    finally:
        runner.disconnect()
        kill_tmux_server(sock)


@dataclass
class TurnaroundRound:
    """One tmuxtrain turnaround run: makespan, machine CPU and what the store recorded."""

    makespan: float
    cpu: float
    t_up: float
    t_add: float
    first_start: float  # after the clock started
    last_finish: float
    failed: int
    user: float  # from `add` to `tmuxtrain wait` returning: what a user waits


def tmuxtrain_makespan(n: int) -> TurnaroundRound:
    """N `true` jobs on 4 simulated GPUs (exclusive, one matrix file), from the first `add`
    to the last finish (the scheduler is already up)."""
    with Home("fake:4x24GiB") as h:
        t_up = h.up()
        doc = {"name": "t", "command": "true", "matrix": {"i": list(range(n))}}
        path = h.write("true.yaml", doc)
        c0 = machine_cpu_s()
        t0 = time.time()
        t_add, _ = h.cli("add", path)
        # `wait` (all jobs) runs beside the store poll: the user's view and the store's, at once
        waiter = subprocess.Popen(
            [*tmuxtrain_argv(), "wait"], env=h.env, cwd=h.root, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t_end = h.wait_counts(lambda c: c["succeeded"] + c["failed"] == n, timeout=60 + n)
        cpu = machine_cpu_s() - c0
        if waiter.wait(timeout=60) != 0:
            raise RuntimeError("tmuxtrain wait: not every job succeeded")
        t_user = time.time() - t0
        jobs = h.store.jobs()
    return TurnaroundRound(
        makespan=t_end - t0,
        cpu=cpu,
        t_up=t_up,
        t_add=t_add,
        first_start=min(j.started_at or math.inf for j in jobs) - t0,
        last_finish=max(j.finished_at or 0 for j in jobs) - t0,
        failed=sum(j.state is not JobState.SUCCEEDED for j in jobs),
        user=t_user,
    )


def bench_turnaround(quick: bool) -> list[Row]:
    """N `true` jobs on 4 simulated GPUs against `tsp -S 4`, in alternating rounds (the
    machine's speed drifts within seconds: each side gets the same moments), and the bare
    cost of a tmux window, in the same run. The medians are compared."""
    n = 200 if quick else 500
    rounds = 1 if quick else 3
    tsp_runs: list[tuple[float, float]] = []
    tt_runs: list[TurnaroundRound] = []
    for k in range(rounds):
        log(f"turnaround: task-spooler, {n} jobs (round {k + 1} of {rounds})")
        tsp_runs.append(tsp_makespan(n))
        log(f"turnaround: tmuxtrain, {n} jobs (round {k + 1} of {rounds})")
        tt_runs.append(tmuxtrain_makespan(n))
    floor_process, floor = tmux_window_floor(min(n, 200))
    ts = statistics.median(t for t, _ in tsp_runs)
    ts_cpu = statistics.median(c for _, c in tsp_runs)
    mid = sorted(tt_runs, key=lambda r: r.makespan)[len(tt_runs) // 2]
    tt, tt_cpu, t_up, t_add = mid.makespan, mid.cpu, mid.t_up, mid.t_add
    first_start, last, failed = mid.first_start, mid.last_finish, sum(r.failed for r in tt_runs)
    per_round = ", ".join(
        f"{r.makespan / t:.1f}x" for r, (t, _) in zip(tt_runs, tsp_runs, strict=True)
    )
    per_job = tt / n
    user = statistics.median(r.user for r in tt_runs)
    cores = os.cpu_count() or 1
    return [
        Row(
            "turnaround",
            f"task-spooler, {n} x true, -S 4",
            ts,
            "s",
            limit="a `tsp` client fork+exec per job",
            detail=f"median of {rounds}: "
            + ", ".join(f"{t:.2f}" for t, _ in tsp_runs)
            + f" s; {ts / n * 1e3:.2f} ms/job, {ts_cpu / n * 1e3:.1f} ms machine CPU/job",
        ),
        Row(
            "turnaround",
            "bare tmux new-window, a tmux process each",
            floor_process * 1e3,
            "ms",
            limit="tmux client start + server fork of the pane",
            detail="what a shell script driving tmux pays per window",
        ),
        Row(
            "turnaround",
            "bare tmux new-window over one control-mode connection",
            floor * 1e3,
            "ms",
            limit="the server's fork of the pane",
            detail="the floor per job of a tmux-native runner (the scheduler's way)",
        ),
        Row(
            "turnaround",
            f"tmuxtrain, {n} x true, 4 fake GPUs",
            tt,
            "s",
            limit="process starts per job on a CPU-bound box (the pane's sh and its sh -c; "
            "the log pipe's sh and cat; utempter twice) and the tmux server's serial work",
            detail=f"median of {rounds}: "
            + ", ".join(f"{r.makespan:.2f}" for r in tt_runs)
            + f" s; add {t_add:.2f} s, first start +{first_start:.2f} s, last finish "
            f"(scheduler clock) +{last:.2f} s, {failed} not succeeded",
        ),
        Row(
            "turnaround",
            "tmuxtrain per-job overhead (makespan / N)",
            per_job * 1e3,
            "ms",
            "< 10 ms",
            per_job < 0.010,
            limit=f"{per_job / floor:.1f}x the bare tmux window",
            detail=f"machine CPU {tt_cpu / n * 1e3:.1f} ms/job over {cores} cores "
            f"(task-spooler {ts_cpu / n * 1e3:.1f})",
        ),
        Row(
            "turnaround",
            "makespan ratio tmuxtrain / task-spooler",
            tt / ts,
            "x",
            "< 5x",
            tt / ts < 5,
            limit=f"floor {floor * n / ts:.1f}x (one bare tmux window per job)",
            detail=f"medians compared; round by round {per_round}",
        ),
        Row(
            "turnaround",
            "as a user sees it: add -> `tmuxtrain wait` returns, / task-spooler",
            user / ts,
            "x",
            "< 5x",
            user / ts < 5,
            limit="the makespan + `wait`'s start-up and its polling of the store",
            detail=f"median {user:.2f} s; round by round "
            + ", ".join(f"{r.user / t:.1f}x" for r, (t, _) in zip(tt_runs, tsp_runs, strict=True)),
        ),
        Row(
            "turnaround",
            "scheduler start-up (tmuxtrain up)",
            t_up * 1e3,
            "ms",
            limit="Python start-up + tmux new-session + polling for the lock",
        ),
    ]


# ---- 2. promotion latency -----------------------------------------------------------------


def read_stamp(path: str) -> float | None:
    """A `date +%s.%N` stamp, or None."""
    try:
        with open(path) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def bench_promotion(quick: bool) -> list[Row]:
    """One simulated GPU, a chain of exclusive jobs: from one job's exit (its last `date`) to
    the next job's command starting (its first `date`)."""
    samples = 50 if quick else 200
    log(f"promotion: {samples} samples on 1 fake GPU")
    with Home("fake:1x24GiB") as h:
        h.up()
        stamps = os.path.join(h.root, "stamps")
        os.makedirs(stamps)
        cmd = f"date +%s.%N > {stamps}/s.{{i}}; sleep 0.15; date +%s.%N > {stamps}/e.{{i}}"
        path = h.write(
            "chain.yaml", {"name": "p", "command": cmd, "matrix": {"i": list(range(samples + 1))}}
        )
        h.cli("add", path)
        h.wait_counts(
            lambda c: c["succeeded"] + c["failed"] == samples + 1,
            timeout=60 + samples * 1.0,
            poll=0.05,
        )
        jobs = sorted(h.store.jobs(), key=lambda j: j.id)
        lat, notice, start = [], [], []
        for i in range(samples):
            end = read_stamp(f"{stamps}/e.{i}")
            nxt = read_stamp(f"{stamps}/s.{i + 1}")
            if end is None or nxt is None:
                continue
            lat.append(nxt - end)
            fin = jobs[i].finished_at
            if fin is not None:
                notice.append(fin - end)  # exit -> the tick that saw it began
                start.append(nxt - fin)  # that tick -> the next command runs
    p50, p99 = statistics.median(lat), pct(lat, 0.99)
    limit = (
        "the tick (finish, decide, claim, send the window over the control connection) "
        "+ tmux making the window + the wrapper's start (sh, then sh -c)"
    )
    return [
        Row(
            "promotion",
            f"exit -> next command, p50 ({len(lat)} samples)",
            p50 * 1e3,
            "ms",
            "< 50 ms",
            p50 < 0.050,
            limit=limit,
            detail=f"exit->tick {statistics.median(notice) * 1e3:.1f} ms, "
            f"tick->command {statistics.median(start) * 1e3:.1f} ms (p50)",
        ),
        Row(
            "promotion",
            "exit -> next command, p99",
            p99 * 1e3,
            "ms",
            limit=limit,
            detail=f"max {max(lat) * 1e3:.1f} ms",
        ),
    ]


# ---- 3. submission ----------------------------------------------------------------------


def bench_submit(quick: bool) -> list[Row]:
    """`add` of a 1,000-job matrix file; single ad-hoc adds in a row; `ls --json` with 10,000
    jobs. Python start-up (`python -c pass`, and importing the CLI) is measured alongside."""
    adhoc = 30 if quick else 100
    rows = []
    with Home("fake:4x24GiB") as h:
        log("submit: 1,000-job matrix file")
        path = h.write(
            "matrix.yaml",
            {
                "name": "sweep-lr{lr}-s{seed}",
                "command": "python train.py --lr {lr} --seed {seed}",
                "gpus": 1,
                "vram": "10GiB",
                "env": {"WANDB_MODE": "offline"},
                "matrix": {"lr": [f"{k}e-4" for k in range(1, 11)], "seed": list(range(100))},
            },
        )
        times = []
        for _ in range(3):
            dt, out = h.cli("add", "--no-start", path)
            if len(out.split()) != 1000:
                raise RuntimeError(f"add printed {len(out.split())} ids, not 1000")
            times.append(dt)
        t_matrix = statistics.median(times)
        rows.append(
            Row(
                "submit",
                "add 1,000-job matrix file (--no-start)",
                t_matrix * 1e3,
                "ms",
                "< 1000 ms",
                t_matrix < 1.0,
                limit="YAML parse + spec expansion + one SQLite transaction",
                detail=f"median of 3: {', '.join(f'{t:.2f}' for t in times)} s",
            )
        )
        log(f"submit: {adhoc} ad-hoc adds, interleaved with Python start-up baselines")
        add_t, py_t, imp_t = [], [], []
        for _ in range(adhoc):
            add_t.append(h.cli("add", "--no-start", "--", "true")[0])
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            py_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import tmuxtrain.cli"], check=True)
            imp_t.append(time.perf_counter() - t0)
        a, p, m = statistics.median(add_t), statistics.median(py_t), statistics.median(imp_t)
        rows.append(
            Row(
                "submit",
                f"add --no-start -- true, p50 of {adhoc}",
                a * 1e3,
                "ms",
                "< 150 ms",
                a < 0.150,
                limit="Python start-up + imports",
                detail=f"p90 {pct(add_t, 0.9) * 1e3:.0f} ms; python -c pass "
                f"{p * 1e3:.0f} ms, import tmuxtrain.cli {m * 1e3:.0f} ms; "
                f"add = {a / p:.1f}x bare Python",
            )
        )
    with Home("fake:8x80GiB") as h:
        n = 10_000
        log(f"submit: ls --json with {n} jobs")
        fill_store(h.store, h.settings, n)
        times = [h.cli("ls", "--json")[0] for _ in range(5)]
        t_ls = statistics.median(times)
        parts = ls_breakdown(h.settings)
        rows.append(
            Row(
                "submit",
                f"ls --json with {n:,} jobs",
                t_ls * 1e3,
                "ms",
                "< 300 ms",
                t_ls < 0.300,
                limit="Python start-up and imports + SQLite building the JSON text",
                detail="in-process: "
                + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in parts.items()),
            )
        )
    return rows


def realistic_spec(i: int, cwd: str) -> JobSpec:
    """A sweep job as users write them (distinct name and command, shared rest)."""
    return JobSpec(
        name=f"sweep-lr{i % 7}e-4-s{i}",
        command=f"python train.py --lr {i % 7}e-4 --seed {i} --epochs 10",
        cwd=cwd,
        env={"WANDB_MODE": "offline"},
        gpus=1 + (i % 10 == 0),
        vram_mib=[None, 10 * GIB, 20 * GIB, 40 * GIB][i % 4],
        priority=i % 3,
        project=f"p{i % 5}",
        retries=1,
        source=f"sweep.yaml:{1 + i % 20}",
    )


def fill_store(store: Store, settings: Settings, n: int) -> None:
    """`n` jobs in one `add_jobs` transaction; 90 % then finished with metrics, 1 % running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    ids = store.add_jobs(
        [(realistic_spec(i, settings.home), (), env) for i in range(n)],
        time.time() - 86400,
        settings.logs_dir,
    )
    now = time.time() - 3600
    for k, job_id in enumerate(ids[: int(n * 0.91)]):
        store.transition(
            job_id,
            JobState.RUNNING,
            now,
            expect=[JobState.PENDING],
            gpus=(k % 8,),
            started_at=now,
            tmux_window=f"@{job_id}",
        )
        latest = {"loss": 0.3 + k / n, "epoch": 10.0, "epochs": 10.0, "step": 1e4, "steps": 1e4}
        store.add_metrics(job_id, [], latest, now, 0)
        if k >= int(n * 0.01):
            store.transition(
                job_id,
                JobState.SUCCEEDED,
                now + 60,
                expect=[JobState.RUNNING],
                finished_at=now + 60,
                exit_code=0,
            )


def ls_breakdown(settings: Settings) -> dict[str, float]:
    """Where `ls --json` spends its time, in-process: SQLite building the JSON text (with
    Python's `iso` and `runtime_s` called per row), and writing it out."""
    c = Client(settings)
    try:
        t0 = time.perf_counter()
        text = c.list_json()
        t1 = time.perf_counter()
        with open(os.devnull, "w") as out:
            out.write(text + "\n")
        t2 = time.perf_counter()
    finally:
        c.close()
    return {"SQLite json_object per row": t1 - t0, "write": t2 - t1}


# ---- 4. idle cost ---------------------------------------------------------------------------


def measure_process(pids: dict[str, int], seconds: float) -> dict[str, tuple[float, float]]:
    """(CPU % of one core, max RSS MB) of each pid over `seconds`, sampled every second."""
    procs = {k: psutil.Process(p) for k, p in pids.items() if p}
    start = {k: cpu_s(p) for k, p in procs.items()}
    rss = dict.fromkeys(procs, 0.0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for k, p in procs.items():
            rss[k] = max(rss[k], p.memory_info().rss / MB)
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
    wall = time.monotonic() - t0
    return {k: ((cpu_s(p) - start[k]) / wall * 100, rss[k]) for k, p in procs.items()}


def bench_idle(quick: bool) -> list[Row]:
    """The scheduler's CPU and RSS, first with 8 fake GPUs, 50 running (`sleep 1000`) and
    1,000 pending jobs that cannot be placed, then with nothing to do."""
    seconds = 15.0 if quick else 60.0
    rows = []
    with Home("fake:8x24GiB", "max_jobs_per_gpu: 7\n") as h:
        h.up()
        # 50 small jobs packed 7 a GPU touch all 8 GPUs, so no exclusive job fits.
        path = h.write(
            "busy.yaml",
            {
                "jobs": [
                    {
                        "name": "busy",
                        "command": "sleep 1000",
                        "vram": "2GiB",
                        "matrix": {"i": list(range(50))},
                    },
                    {"name": "queued", "command": "true", "matrix": {"i": list(range(1000))}},
                ]
            },
        )
        h.cli("add", path)
        h.wait_counts(lambda c: c["running"] >= 50, timeout=120, poll=0.1)
        time.sleep(3)  # let the launch burst settle
        counts = h.store.counts()
        log(
            f"idle: busy queue ({counts['running']} running, {counts['pending']} pending), "
            f"{seconds:g} s"
        )
        m = measure_process(
            {"scheduler": h.scheduler_pid(), "tmux": h.tmux_server_pid() or 0}, seconds
        )
        cpu, rss = m["scheduler"]
        rows.append(
            Row(
                "idle",
                f"scheduler CPU, {counts['running']} running + {counts['pending']} pending, 8 GPUs",
                cpu,
                "%",
                "< 1 %",
                cpu < 1.0,
                limit="1 tick/s; the queue is re-decided only when the store or GPUs change; a "
                "full reconcile (tmux list-panes + /proc per running job) every 5 s",
                detail=f"tmux server {m['tmux'][0]:.2f} %",
            )
        )
        rows.append(
            Row(
                "idle",
                "scheduler RSS, same",
                rss,
                "MB",
                "< 100 MB",
                rss < 100,
                limit="Python + psutil + yaml + 1,050 Job objects",
            )
        )
    with Home("fake:8x24GiB") as h:
        h.up()
        time.sleep(2)
        log(f"idle: nothing to do, {seconds:g} s")
        m = measure_process({"scheduler": h.scheduler_pid()}, seconds)
        cpu, rss = m["scheduler"]
        rows.append(
            Row(
                "idle",
                "scheduler CPU, nothing to do",
                cpu,
                "%",
                "< 1 %",
                cpu < 1.0,
                limit="one tick a second (a few SQLite reads, the fake GPU probe)",
            )
        )
        rows.append(
            Row(
                "idle",
                "scheduler RSS, nothing to do",
                rss,
                "MB",
                "< 100 MB",
                rss < 100,
                limit="the Python interpreter and imports",
            )
        )
    return rows


# ---- 5. the scheduling policy ---------------------------------------------------------------


def policy_input(pending: int, gpus: int, seed: int = 5) -> tuple[list[Job], list[GpuInfo]]:
    """`pending` jobs of mixed shapes (5 % with a dependency, priorities, 5 projects) and 16
    running ones holding 30 GiB each on `gpus` 80 GiB GPUs."""
    rnd = random.Random(seed)
    infos = [
        GpuInfo(i, f"GPU-fake-{i}", "Fake H100", 80 * GIB, 0, simulated=True) for i in range(gpus)
    ]
    jobs = []
    for k in range(2 * gpus):
        spec = JobSpec(
            name=f"run{k}",
            command="python train.py",
            cwd="/w",
            gpus=1,
            vram_mib=30 * GIB,
            project=f"p{k % 5}",
        )
        jobs.append(Job(k + 1, spec, JobState.RUNNING, gpus=(k % gpus,), started_at=0.0))
    base = len(jobs) + 1
    for k in range(pending):
        spec = JobSpec(
            name=f"job{k}",
            command=f"python train.py --seed {k}",
            cwd="/w",
            gpus=rnd.choice((1, 1, 1, 2, 4)),
            vram_mib=rnd.choice((None, 10 * GIB, 20 * GIB, 40 * GIB, 60 * GIB)),
            priority=rnd.randrange(4),
            project=f"p{rnd.randrange(5)}",
        )
        after = (base + rnd.randrange(k),) if k and rnd.random() < 0.05 else ()
        jobs.append(
            Job(base + k, spec, JobState.PENDING, after_ids=after, held=rnd.random() < 0.02)
        )
    return jobs, infos


def bench_decide(quick: bool) -> list[Row]:
    """`core.schedule.decide` for 10,000 pending jobs on 8 GPUs, per policy (median), and what
    the scheduler's tick adds around it: reading those jobs from SQLite."""
    from tmuxtrain.core.schedule import decide

    repeats = 5 if quick else 20
    jobs, infos = policy_input(10_000, 8)
    rows = []
    for name, cfg in [
        ("priority", Config(policy="priority", headroom_mib=0)),
        ("fifo", Config(policy="fifo", headroom_mib=0)),
        ("fair-share", Config(policy="fair-share", headroom_mib=0, shares={"p0": 2.0})),
        ("priority, no backfill", Config(policy="priority", backfill=False, headroom_mib=0)),
    ]:
        cpu, wall = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            d = decide(jobs, infos, cfg, 1000.0, {})
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
        med = statistics.median(cpu)  # CPU time: other tenants' load stretches wall time
        rows.append(
            Row(
                "decide",
                f"decide(), 10,000 pending, 8 GPUs, {name} (CPU)",
                med * 1e3,
                "ms",
                "< 20 ms",
                med < 0.020,
                limit="a Python loop over the whole queue (~0.6 us a job; fair-share takes "
                "the jobs project by project from a heap of standings, as they start)",
                detail=f"min {min(cpu) * 1e3:.1f} ms, "
                f"wall p50 {statistics.median(wall) * 1e3:.1f} ms; "
                f"{len(d.launches)} launches, {len(d.reasons)} reasons",
            )
        )
    log("decide: the tick's read of 10,000 jobs from SQLite")
    tmp = tempfile.mkdtemp(prefix="tmuxtrain-bench-")
    try:
        store = Store(os.path.join(tmp, "t.db"))
        store.add_jobs([(realistic_spec(i, tmp), (), None) for i in range(10_000)], 0.0, tmp)
        times = []
        for _ in range(max(3, repeats // 4)):
            t0 = time.perf_counter()
            store.jobs([JobState.PENDING, JobState.RUNNING])
            times.append(time.perf_counter() - t0)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median(times)
    rows.append(
        Row(
            "decide",
            "context: Store.jobs(pending, running), 10,000 rows",
            med * 1e3,
            "ms",
            limit="json.loads + JobSpec.from_dict per row; the daemon re-reads the queue "
            "like this on every change",
        )
    )
    return rows + learner_rows(repeats)


def learner_rows(repeats: int) -> list[Row]:
    """What learned VRAM adds to a decision: `VramLearner.learn` over 10,000 waiting jobs
    of one sweep, once when a sibling's peak first gives them all an ask (10,000 writes),
    then at rest (one query, nothing changes), as before every later decision."""
    from tmuxtrain.daemon.learner import VramLearner
    from tmuxtrain.store.learning import record_peaks

    tmp = tempfile.mkdtemp(prefix="tmuxtrain-bench-")
    try:
        store = Store(os.path.join(tmp, "t.db"))
        spec = JobSpec(name="s", command="python train.py", cwd=tmp, sweep="bench")
        ids = store.add_jobs([(spec, (), None)] * 10_001, 0.0, tmp)
        store.transition(ids[0], JobState.RUNNING, 1.0, expect=[JobState.PENDING], gpus=(0,))
        record_peaks(store, {ids[0]: (1, 9 * GIB)})
        store.transition(ids[0], JobState.SUCCEEDED, 2.0, expect=[JobState.RUNNING])
        learner = VramLearner(store, Config(headroom_mib=0))
        gpus = [GpuInfo(i, f"GPU-{i}", "A100", 80 * GIB, 0) for i in range(8)]
        queue = store.pending()
        t0 = time.perf_counter()
        pending = learner.learn(queue, gpus, 3.0)
        first = time.perf_counter() - t0
        assert all(j.vram_source == "learned" for j in pending)
        times = []
        for _ in range(max(3, repeats)):
            t0 = time.process_time()  # CPU time: other tenants' load stretches wall time
            learner.learn(pending, gpus, 4.0)
            times.append(time.process_time() - t0)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rest = statistics.median(times)
    return [
        Row(
            "decide",
            "learned VRAM at rest, 10,000 waiting sweep jobs, per decision (CPU)",
            rest * 1e3,
            "ms",
            "< 10 ms",
            rest < 0.010,
            limit="a pass over the queue for learnable jobs + one indexed query per decision",
        ),
        Row(
            "decide",
            "context: learning an ask for 10,000 waiting jobs at once",
            first * 1e3,
            "ms",
            limit="an UPDATE and an event per job, in one transaction (wall time)",
        ),
    ]


def bench_labday(quick: bool) -> list[Row]:
    """A day of a lab (tests/labday.py) on 8 simulated GPUs, replayed through the real
    scheduler parts under each policy, with and without backfill: GPU utilisation, mean
    wait per project, the longest wait of a multi-GPU job. Quick: a tenth of the day."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from tests.labday import POLICIES, run_day, workload

    subs = workload(scale=0.1 if quick else 1.0)
    rows = []
    for policy in POLICIES:
        for backfill in (True, False):
            tmp = tempfile.mkdtemp(prefix="tmuxtrain-bench-")
            log(f"labday: {policy}, backfill {'on' if backfill else 'off'}")
            try:
                t0 = time.process_time()
                r = run_day(Path(tmp), policy, backfill, subs, checked=False)
                cpu = time.process_time() - t0
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            waits = ", ".join(f"{p} {m:.0f}" for p, m in r.mean_wait_min.items())
            rows.append(
                Row(
                    "labday",
                    f"{r.jobs} jobs, 8 GPUs, {policy}, backfill {'on' if backfill else 'off'}",
                    100 * r.utilisation,
                    "% GPU",
                    limit="GPU-equivalents held over 8 GPUs, first submission to last end",
                    detail=f"mean wait min: {waits}; longest multi-GPU wait "
                    f"{r.longest_multi_gpu_wait_min:.0f} min; makespan {r.makespan_h:.1f} h; "
                    f"simulated in {cpu:.0f} s CPU",
                )
            )
    return rows


# ---- 6. log parsing ---------------------------------------------------------------------------

NOISE = [
    "2026-01-01 12:{m:02d}:{s:02d},{ms:03d} INFO data.py:{ln}: loaded shard {k} of 1024 "
    "({n} samples)\n",
    "/usr/lib/python3/site-packages/torch/utils/data/dataloader.py:558: UserWarning: This "
    "DataLoader will create 16 worker processes in total.\n",
    '  File "/home/you/train.py", line {ln}, in <module>\n',
    "[rank0]: Gradient Accumulation steps = 1, world_size 4, pid {n}\n",
    "Saving model checkpoint to runs/exp{k}/checkpoint-{n}\n",
    "\x1b[32mINFO\x1b[0m \x1b[2m12:{m:02d}:{s:02d}\x1b[0m Using 4 GPUs, shard {k} ready\n",
    "wandb: Syncing run fluent-sweep-{k} (run id 3kz{n})\n",
    "Map: 100%|██████████| {n}/{n} [00:01<00:00, 8123.45 examples/s]\r",
    "    x = self.model(batch)  # shape [{k}, 512, 768]\n",
    "NCCL INFO Channel {k:02d}/32 : 0[{k}] -> 1[{ln}] via P2P/IPC\n",
]
METRIC = [
    "step={n} loss={loss:.4f} lr={lr:.2e} grad_norm={g:.3f}\n",
    "{{'loss': {loss:.4f}, 'grad_norm': {g:.3f}, 'learning_rate': {lr:.2e}, 'epoch': {ep:.2f}}}\n",
    '{{"step": {n}, "train/loss": {loss:.5f}, "train/lr": {lr:.3e}}}\n',
    "Epoch {e}:  {p:2d}%|█████▌    | {k}/1000 [00:30<00:37, 14.8it/s, loss={loss:.3f}, v_num=0]\r",
    "{k}/1000 [=====>........] - ETA: 12s - loss: {loss:.4f} - accuracy: {acc:.4f}\r",
    "| epoch {e:03d} | loss {loss:.3f} | ppl {ppl:.2f} | wps 1234 | ups 1.2 | lr {lr:.4g}\n",
    "Train: {e} [ {k:4d}/1000 ({p:3d}%)]  Loss: {loss:.4f} ({loss:.4f})  Time: 0.312s,  102.3/s"
    "  LR: {lr:.3e}  Data: 0.012 (0.013)\n",
    "epoch {e} iter {k}: loss {loss:.4f}, val_acc: {acc:.3f}\n",
]


def synth_log(size: int, metric_share: float = 0.15, seed: int = 7) -> bytes:
    """About `size` bytes of training output: mostly noise, `metric_share` of the lines in
    the supported formats (key=value, HF dicts, JSON lines, tqdm/Lightning, Keras, fairseq,
    timm, plain words), with ANSI colours and `\\r` redraws."""
    rnd = random.Random(seed)
    parts: list[str] = []
    total = 0
    k = 0
    while total < size:
        k += 1
        src = METRIC if rnd.random() < metric_share else NOISE
        loss = 2.5 / (1 + k * 1e-4)
        line = rnd.choice(src).format(
            m=k // 60 % 60,
            s=k % 60,
            ms=k % 1000,
            ln=k % 900 + 10,
            k=k % 1000,
            n=k,
            loss=loss,
            lr=3e-4 * (1 - k / 1e8),
            g=1 + (k % 97) / 100,
            ep=k / 1000,
            e=k // 1000,
            p=k % 1000 // 10,
            acc=1 - loss / 3,
            ppl=2**loss,
        )
        parts.append(line)
        total += len(line) + line.count("█") * 2 + line.count("━") * 2
    return "".join(parts).encode()


SPEW = r"""
import os, sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
pool = open(sys.argv[3], "rb").read()
out = sys.stdout.buffer
chunk = max(1, rate // 50)
sent, t0, pos = 0, time.monotonic(), 0
while time.monotonic() - t0 < seconds:
    piece = pool[pos:pos + chunk]
    pos = (pos + chunk) % (len(pool) - chunk)
    out.write(piece); out.flush()
    sent += len(piece)
    ahead = sent / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
"""


# The plain-regex baseline: what the simplest useful reader pays per metric line, one
# `name=value` / `name: value` regex over each line and float() of each value. It reads no
# formats, progress, tables or names, so it is a floor of Python work per line, measured in
# the same run as the parser so the machine's speed and load cancel out of their ratio.
PLAIN_METRIC = rb"([A-Za-z_][\w/.]*)\s*[=:]\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
DENSE_SHARE = 1 / 3  # the parser may cost up to 3x the baseline on a dense log (see below)


def plain_regex_rate(data: bytes) -> tuple[float, int]:
    """MB/s of CPU time of the plain-regex baseline over `data`, and the values it read."""
    import re

    rx = re.compile(PLAIN_METRIC)
    values = 0
    t0 = time.process_time()
    for line in data.replace(b"\r", b"\n").split(b"\n"):
        for m in rx.finditer(line):
            float(m.group(2))
            values += 1
    return len(data) / MB / (time.process_time() - t0), values


def bench_logparse(quick: bool) -> list[Row]:
    """`LogParser.feed` throughput on one core (1 MiB feeds), against `parse_line` per line
    and a bare literal regex scan; then the scheduler's CPU while jobs print 1 MB/s each."""
    from tmuxtrain.core.metrics import LogParser, parse_line

    size = (20 if quick else 200) * MB
    log(f"logparse: synthesising {size // MB} MB")
    data = synth_log(size)
    chunk = 2**20
    parser = LogParser()
    samples = 0
    t0 = time.process_time()
    for i in range(0, len(data), chunk):
        samples += len(parser.feed(data[i : i + chunk], 1000.0 + i / chunk))
    cpu = time.process_time() - t0
    rate = len(data) / MB / cpu
    # Peers on a 5 MB slice: the stateless per-line API, and the floor of any line scan.
    piece = data[: 5 * MB]
    t0 = time.process_time()
    for line in piece.decode("utf-8", "replace").replace("\r", "\n").split("\n"):
        parse_line(line)
    per_line = len(piece) / MB / (time.process_time() - t0)
    import re

    rx = re.compile(rb"loss")
    t0 = time.process_time()
    for _ in range(5):
        sum(1 for _ in rx.finditer(data))
    scan = 5 * len(data) / MB / (time.process_time() - t0)
    # Dense: every line carries metrics (a job that logs every step, a bar redrawn per
    # batch). Each line costs Python work, so this is the parser's floor, not its usual rate.
    dense = synth_log(size // 8, metric_share=1.0)
    parser = LogParser()
    t0 = time.process_time()
    for i in range(0, len(dense), chunk):
        parser.feed(dense[i : i + chunk], 1000.0 + i / chunk)
    dense_cpu = time.process_time() - t0
    dense_rate = len(dense) / MB / dense_cpu
    dense_lines = dense.count(b"\n") + dense.count(b"\r")
    t0 = time.process_time()
    for _ in range(5):
        sum(1 for _ in rx.finditer(dense))
    dense_scan = 5 * len(dense) / MB / (time.process_time() - t0)
    plain, plain_values = plain_regex_rate(dense)
    share = dense_rate / plain
    rows = [
        Row(
            "logparse",
            f"LogParser.feed, {len(data) / MB:.0f} MB mixed log, 1 core",
            rate,
            "MB/s",
            ">= 50 MB/s",
            rate >= 50,
            limit="Python work per line that passes the literal pre-filter",
            detail=f"{samples:,} samples; parse_line per line {per_line:.1f} MB/s "
            f"({rate / per_line:.0f}x slower); one literal regex pass {scan:,.0f} MB/s",
        ),
        Row(
            "logparse",
            f"LogParser.feed, {len(dense) / MB:.0f} MB dense log (every line a metric line)",
            dense_rate,
            "MB/s",
            f">= {DENSE_SHARE:.2f} x plain regex",
            share >= DENSE_SHARE,
            limit="Python per metric line: read (or replay) it, progress, samples",
            detail=f"{share:.2f} x the plain-regex baseline ({plain:.1f} MB/s, "
            f"{plain_values:,} values); {dense_lines / dense_cpu:,.0f} metric lines/s; one "
            f"literal regex pass {dense_scan:,.0f} MB/s. 10 MB/s is ~100,000 metric lines a "
            "second on one core: 100 jobs each logging 1,000 steps a second",
        ),
        Row(
            "logparse",
            "plain-regex baseline on the dense log: name[=:]value, float() each",
            plain,
            "MB/s",
            limit="one regex pass and float() per line: the floor of per-line Python",
            detail="context for the dense row's target, measured in the same run",
        ),
    ]
    rows += bench_log_tail(quick)
    return rows


def bench_log_tail(quick: bool) -> list[Row]:
    """The scheduler's CPU while `jobs` CPU-only jobs each print 1 MB/s of mixed output."""
    jobs, seconds, rate = (10, 10.0, MB) if quick else (50, 30.0, MB)
    # All at once, and the probe job beside them: max_cpu_jobs defaults to the CPU cores.
    with Home("none", config=f"max_cpu_jobs: {jobs + 1}\n") as h:
        h.up()
        pool = os.path.join(h.root, "pool.log")
        with open(pool, "wb") as f:
            f.write(synth_log(4 * MB, seed=11))
        spew = h.write("spew.py", SPEW)
        cmd = f"{sys.executable} {spew} {rate} {seconds + 30} {pool}"
        path = h.write(
            "spew.yaml",
            {"name": "spew", "command": cmd, "gpus": 0, "matrix": {"i": list(range(jobs))}},
        )
        h.cli("add", path)
        h.wait_counts(lambda c: c["running"] >= jobs, timeout=60, poll=0.1)
        time.sleep(2)
        running = h.store.jobs([JobState.RUNNING])

        def logged() -> tuple[int, int]:
            """(bytes in the logs, bytes the scheduler has parsed) over all jobs."""
            size = sum(os.path.getsize(j.log_path) for j in running if os.path.exists(j.log_path))
            return size, sum(h.store.history.log_offset(j.id) for j in running)

        log(f"logparse: {jobs} jobs printing {rate / MB:g} MB/s each, {seconds:g} s")
        size0, parsed0 = logged()
        m = measure_process(
            {"scheduler": h.scheduler_pid(), "tmux": h.tmux_server_pid() or 0}, seconds
        )
        size1, parsed1 = logged()
        cpu, rss = m["scheduler"]
        # How long does the queue wait meanwhile? A CPU-only `true` added now (which nudges).
        t0 = time.time()
        _, out = h.cli("add", "--gpus", "0", "--", "true")
        probe_id = int(out.split()[-1])
        h.wait_counts(lambda c: c["succeeded"] + c["failed"] >= 1, timeout=300, poll=0.02)
        probe = h.store.get(probe_id)
        start_lat = (probe.started_at or math.inf) - t0
    got = (size1 - size0) / MB / seconds
    parsed = (parsed1 - parsed0) / MB / seconds
    return [
        Row(
            "logparse",
            f"scheduler CPU, {jobs} jobs printing {rate / MB:g} MB/s each",
            cpu,
            "%",
            limit=f"tmux itself, {m['tmux'][0]:.0f} % of a core, bounds what reaches the logs "
            f"({os.cpu_count()} cores in all)",
            detail=f"{got:.1f} MB/s reached the logs ({got / jobs:.2f} per job), the scheduler "
            f"parsed {parsed:.1f} MB/s ({cpu / 100 / max(parsed, 1e-9) * 1e3:.0f} ms CPU per MB), "
            f"backlog {(size1 - parsed1) / MB:.1f} MB at the end; RSS {rss:.0f} MB",
        ),
        Row(
            "logparse",
            f"add -> start of a CPU-only job while {jobs} jobs print",
            start_lat * 1e3,
            "ms",
            limit="log parsing gets 100 ms a tick, jobs taking turns",
            detail="compare the promotion row (an idle box)",
        ),
    ]


# ---- 7. dashboard refresh --------------------------------------------------------------------


def ui_bench() -> tuple[Callable[..., dict[str, Any]], Callable[..., Settings]] | None:
    """(`tests.ui.refresh_bench.measure_refresh_detail`, `tests.ui.demo_state.build_bench`):
    the dashboard's benchmark hook and its state live with the tests, not in the package."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        from tests.ui.demo_state import build_bench
        from tests.ui.refresh_bench import measure_refresh_detail
    except ImportError:
        return None
    return measure_refresh_detail, build_bench


def bench_ui(quick: bool) -> list[Row]:
    """One dashboard refresh with 1,000 jobs on 8 GPUs: `tests.ui.refresh_bench` when it exists
    (the worker's fetch + the UI thread's apply, headless, with every running job's metrics
    changing before each refresh), and the data side alone (`Client.list()` +
    `Client.gpus()`) in any case."""
    refreshes = 10 if quick else 30
    rows = []
    hook = ui_bench()
    tmp = tempfile.mkdtemp(prefix="tmuxtrain-bench-ui-")
    try:
        if hook is not None:
            measure, build = hook
            settings = build(os.path.join(tmp, "home"), jobs=1000, gpus=8)
            log(f"ui: tests.ui.refresh_bench, {refreshes} busy refreshes")
            client = Client(settings)
            try:
                r = measure(client, refreshes)
            finally:
                client.close()
            rows.append(
                Row(
                    "ui",
                    "dashboard refresh, 1,000 jobs, 8 GPUs (ui.bench, mean)",
                    r["mean"] * 1e3,
                    "ms",
                    "< 30 ms",
                    r["mean"] < 0.030,
                    limit="re-reading the jobs after each commit + patching the changed rows",
                    detail=f"median {r['median'] * 1e3:.1f}, max {r['max'] * 1e3:.1f} ms; fetch "
                    f"{r['fetch'] * 1e3:.1f} + apply {r['apply'] * 1e3:.1f} ms; "
                    f"{r['rows_formatted']:.0f} of {r['rows']} rows re-formatted",
                )
            )
        else:
            settings = from_env(
                {"TMUXTRAIN_HOME": os.path.join(tmp, "home"), "TMUXTRAIN_GPUS": "fake:8x80GiB"}
            )
            settings.ensure_dirs()
            store = Store(settings.db_path)
            fill_store(store, settings, 1000)
            store.close()
        client = Client(settings)
        try:
            times = []
            for _ in range(refreshes):
                t0 = time.perf_counter()
                client.list()
                client.gpus()
                times.append(time.perf_counter() - t0)
        finally:
            client.close()
        med = statistics.median(times)
        what = "data side: Client.list() + Client.gpus(), 1,000 jobs"
        if hook is None:
            what += " (no tests.ui.refresh_bench yet)"
        rows.append(
            Row(
                "ui",
                what,
                med * 1e3,
                "ms",
                "< 30 ms" if hook is None else "",
                med < 0.030 if hook is None else None,
                limit="contract JSON for every job + opening a GPU probe; the dashboard "
                "uses list_jobs() and a kept-open probe instead",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ---- the run ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, check=False)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "tmux": version(["tmux", "-V"]).removeprefix("tmux "),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
    }


RUNNERS: dict[str, Callable[[bool], list[Row]]] = {
    "turnaround": bench_turnaround,
    "promotion": bench_promotion,
    "submit": bench_submit,
    "idle": bench_idle,
    "decide": bench_decide,
    "labday": bench_labday,
    "logparse": bench_logparse,
    "ui": bench_ui,
}


def run_apart(section: str, quick: bool) -> list[Row]:
    """One section in a fresh Python process (as pyperf runs its benchmarks): what an
    earlier section left in the heap (fragmented memory, caches) must not slow the
    in-process measurements of the next one."""
    argv = [sys.executable, os.path.abspath(__file__), "--only", section, "--json"]
    proc = subprocess.run(argv + ["--quick"] * quick, stdout=subprocess.PIPE, text=True)
    if not proc.stdout.strip():
        raise RuntimeError(f"the section's process exited {proc.returncode} without results")
    return [Row(**r) for r in json.loads(proc.stdout)["results"]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections; print one table (or JSON); exit 1 if a target was missed."""
    p = argparse.ArgumentParser(description="tmuxtrain benchmarks (see docs/benchmarks.md)")
    p.add_argument("--quick", action="store_true", help="a reduced run, under two minutes")
    p.add_argument("--only", choices=SECTIONS, action="append", help="run only this section")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    a = p.parse_args(argv)
    if shutil.which("tmux") is None:
        print("bench: tmux is missing", file=sys.stderr)
        return 2
    info = machine()
    log(f"{info['cpu']} x{info['nproc']}, Python {info['python']}, tmux {info['tmux']}")
    rows: list[Row] = []
    t0 = time.monotonic()
    sections = a.only or list(SECTIONS)
    for name in sections:
        try:
            rows += RUNNERS[name](a.quick) if len(sections) == 1 else run_apart(name, a.quick)
        except Exception as e:  # one broken section must not hide the others' figures
            log(f"{name} failed: {type(e).__name__}: {e}")
            rows.append(
                Row(
                    name,
                    "section failed",
                    math.nan,
                    "",
                    ok=False,
                    detail=f"{type(e).__name__}: {e}",
                )
            )
    took = time.monotonic() - t0
    if a.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "quick": a.quick,
                    "seconds": round(took, 1),
                    "results": [asdict(r) for r in rows],
                },
                indent=1,
            )
        )
    else:
        print(table(rows))
        print(
            f"\n{'quick' if a.quick else 'full'} run, {took:.0f} s; "
            + ", ".join(f"{k} {v}" for k, v in info.items())
        )
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
