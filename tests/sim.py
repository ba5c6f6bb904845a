"""The scheduler simulation: the real scheduler parts (`daemon.loop.Scheduler` and all it
composes), a real SQLite store in a temp folder and simulated GPUs, with the in-memory
`FakeRunner` for tmux and a simulated clock. Thousands of jobs run in seconds.

`Sim` checks the promises that span many ticks against the runner's ground truth after
every tick (`check`), and at the end (`finish`):

- no GPU is overcommitted: a whole-GPU job alone on its GPUs, declared VRAM within memory,
  counting every live process of an attempt (leftovers too);
- no job runs twice at once, and no attempt starts twice;
- each attempt that ran ends exactly once (one end event), and every job ends;
- a job starts only once every job it depends on has succeeded;
- backfill: no later job starts on the GPUs reserved for the head of the queue;
- fair-share, per decision: a job of a project starts while a same-shaped job of another
  project waits for GPUs only if its project's standing is not above the other's. The
  standing is recomputed here from the attempt records by its definition
  (`core.fairshare`: decayed GPU-seconds plus a charge per GPU held, over the share), and
  at the end the records are checked against what the runner really ran.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tmuxtrain.core.model import FINISHED, Config, JobSpec, JobState
from tmuxtrain.core.schedule import Decisions
from tmuxtrain.daemon.loop import Scheduler
from tmuxtrain.gpus import GpuProbe
from tmuxtrain.gpus.fake import FakeProbe
from tmuxtrain.runners.fake import FakeRunner, SimCrash
from tmuxtrain.settings import Settings
from tmuxtrain.store import Store

START = 1_800_000_000.0
END_KINDS = ("succeeded", "failed", "cancelled", "retrying", "preempted")


class SimClock:
    """Simulated time: `wait` moves it on instead of sleeping."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def wait(self, seconds: float, fds: Sequence[int]) -> list[int]:
        self.now += max(seconds, 0.0001)
        return []


class Violation(BaseException):
    """A broken promise: a BaseException, so the loop's `except Exception` cannot swallow
    it as a failed tick."""


class Checked(Scheduler):
    """The real scheduler, with the simulation's checks after every tick."""

    sim: Sim

    def tick(self, now: float) -> None:
        self.launcher.last = None  # check this tick's decision only (a failed tick's: none)
        super().tick(now)
        try:
            self.sim.check(self)
        except AssertionError as e:
            raise Violation(f"t={now - START:.1f}s: {e}") from e


@dataclass
class Sim:
    root: Path
    gpus: int = 8
    gpu_mib: int = 80 * 1024
    config: Config = field(default_factory=Config)
    seed: int = 0
    checked: bool = True  # False: the plain scheduler, no per-tick checks (benchmarks)
    idle_tick_s: float = 5.0  # the loop's longest sleep when nothing is due
    # The GPU probe of each (re)started scheduler; default: the plain simulated GPUs.
    probe: Callable[[Sim], GpuProbe] | None = None

    def __post_init__(self) -> None:
        home = self.root / "home"
        self.settings = Settings(str(home), None, None, "sim", f"fake:{self.gpus}x{self.gpu_mib}")
        self.settings.ensure_dirs()
        self.clock = SimClock()
        self.runner = FakeRunner(self.clock.time, home=self.settings.home)
        self.rng = random.Random(self.seed)
        self.sched: Scheduler | None = None
        self.seen_launches = 0
        self.restarts = 0
        self.ticks = 0
        self.specs: dict[int, JobSpec] = {}
        self.deps: dict[int, tuple[int, ...]] = {}
        from tests.sim_fairshare import FairShareCheck  # it imports this module

        self.fair = FairShareCheck(self)
        self.reservations: list[tuple[int, float | None, float]] = []  # (head, start, now)

    # ---- driving ----------------------------------------------------------------------

    def scheduler(self) -> Scheduler:
        """The running scheduler, or a new one over the same state (a restart)."""
        if self.sched is None:
            store = Store(self.settings.db_path)
            probe = self.probe(self) if self.probe else FakeProbe(self.settings.gpus or "")
            kind = Checked if self.checked else Scheduler
            s = kind(
                self.settings,
                self.config,
                store,
                self.runner,
                probe,
                self.clock,
                idle_tick_s=self.idle_tick_s,
            )
            if isinstance(s, Checked):
                s.sim = self
            self.sched = s
        return self.sched

    def close(self) -> None:
        if self.sched is not None:
            self.sched.store.close()
            self.sched = None

    def crash(self) -> None:
        """The scheduler dies (kill -9): its memory and its connection are gone."""
        if self.sched is not None:
            self.sched.store.close()
            self.sched = None
            self.restarts += 1

    def add(self, specs: Sequence[tuple[JobSpec, tuple[int, ...]]]) -> list[int]:
        store = Store(self.settings.db_path)
        try:
            ids = store.add_jobs(
                [(s, d, {}) for s, d in specs], self.clock.now, self.settings.logs_dir
            )
        finally:
            store.close()
        for (spec, deps), i in zip(specs, ids, strict=True):
            self.specs[i], self.deps[i] = spec, deps
        return ids

    def run(self, seconds: float) -> None:
        """Run the scheduler for about `seconds` of simulated time, in its own loop (`run`,
        which sleeps on the simulated clock), restarting it after each crash it meets."""
        until = self.clock.now + seconds
        while self.clock.now < until:
            s = self.scheduler()
            try:
                s.run(until=until)
            except SimCrash:
                self.crash()
                continue
            s.stopping = ""

    def run_until_done(self, limit_s: float = 10**7) -> None:
        start = self.clock.now
        while not self.done():
            assert self.clock.now - start < limit_s, "jobs never finished"
            self.run(60.0)

    def done(self) -> bool:
        store = self.scheduler().store
        counts = store.counts()
        return counts["pending"] == 0 and counts["running"] == 0 and not self.runner.alive()

    # ---- checks -----------------------------------------------------------------------

    def check(self, sched: Scheduler) -> None:
        self.ticks += 1
        store = sched.store
        now = self.clock.now
        self._gpus_never_overcommitted(now)
        self._each_job_runs_once(now)
        self._new_launches_had_their_dependencies(store)
        decision = sched.launcher.last
        if decision is not None:
            self._backfill_kept_the_reservation(decision, now)
            if sched.config.policy == "fair-share" and decision.launches:
                self.fair.check(decision, store, sched.config, now)
            sched.launcher.last = None

    def _gpus_never_overcommitted(self, now: float) -> None:
        on: dict[int, list[tuple[int, int | None]]] = {}
        for p in self.runner.alive():
            for g in p.gpus:
                on.setdefault(g, []).append((p.job_id, p.vram_mib))
        limit = self.gpu_mib - self.config.headroom_mib
        for g, holders in on.items():
            if any(v is None for _, v in holders):
                assert len(holders) == 1, f"t={now}: GPU {g} shared by an exclusive job: {holders}"
            else:
                assert sum(v or 0 for _, v in holders) <= limit, f"GPU {g} overcommitted: {holders}"
                assert len(holders) <= self.config.max_jobs_per_gpu

    def _each_job_runs_once(self, now: float) -> None:
        live = Counter(p.job_id for p in self.runner.alive())
        twice = [j for j, n in live.items() if n > 1]
        assert not twice, f"t={now}: jobs running twice at once: {twice}"
        # (An attempt started twice: the runner itself refuses that, see FakeRunner.start.)

    def _new_launches_had_their_dependencies(self, store: Store) -> None:
        new = self.runner.launches[self.seen_launches :]
        self.seen_launches = len(self.runner.launches)
        for job_id, _, _ in new:
            deps = self.deps.get(job_id, ())
            if deps:
                states = {j.id: j.state for j in store.jobs(ids=deps)}
                assert all(states[d] is JobState.SUCCEEDED for d in deps), (job_id, states)

    def _backfill_kept_the_reservation(self, decision: Decisions, now: float) -> None:
        """No job after the head takes its reserved GPUs unless its time limit ends by
        the time they free; and that time is what the running jobs' limits say."""
        reservation = decision.reservation
        if reservation is None:
            return
        head, reserved, before = reservation
        start = decision.reserved_start
        self.reservations.append((head, start, now))
        if start is not None:
            assert start >= now - 1e-6, (head, start, now)
        for launch in decision.launches[before:]:
            taken = reserved & set(launch.gpus)
            limit = self.specs[launch.job_id].timeout_s
            ends_in_time = start is not None and limit is not None and now + limit <= start
            assert not taken or ends_in_time, (
                f"job {launch.job_id} took GPUs {taken} reserved for {head} until {start}"
            )

    def finish(self) -> dict[str, int]:
        """The end-of-run checks; a few counts of what happened."""
        store = self.scheduler().store
        jobs = store.jobs()
        assert all(j.state in FINISHED for j in jobs), [
            (j.id, j.state) for j in jobs if j.state not in FINISHED
        ]
        ends: Counter[tuple[int, int]] = Counter()
        for e in store.history.events(limit=10**9):
            if e["kind"] in END_KINDS and "attempt" in e:
                ends[(e["job_id"], e["attempt"])] += 1
        ran = {(j, a) for j, a, _ in self.runner.launches}
        assert all(n == 1 for n in ends.values()), [k for k, n in ends.items() if n > 1]
        assert ran <= set(ends), sorted(ran - set(ends))[:10]
        self._attempt_records_are_what_ran(store)
        states = Counter(j.state.value for j in jobs)
        return {
            "jobs": len(jobs),
            "attempts": len(ran),
            "restarts": self.restarts,
            "ticks": self.ticks,
            **states,
        }

    def _attempt_records_are_what_ran(self, store: Store) -> None:
        """What fair-share counts (the attempt records) is what the runner ran: each
        attempt started when it was launched, on its GPUs, and ended no earlier than its
        process did (a clean end at the very time; an unclean one when it was noticed)."""
        procs = {(p.job_id, p.attempt): p for p in self.runner.procs.values()}
        rows = store.db.execute(
            "SELECT job_id, attempt, started_at, finished_at, gpus, vram_mib FROM attempts"
        )
        for job_id, attempt, started, finished, gpus, vram in rows:
            p = procs.get((job_id, attempt))
            if p is None:
                continue  # never ran (its start failed)
            assert (started, tuple(json.loads(gpus)), vram) == (p.started, p.gpus, p.vram_mib)
            if p.killed_at is None and p.ends <= finished:
                assert finished == p.ends, (job_id, attempt, finished, p.ends)
            else:
                end = p.killed_at if p.killed_at is not None else p.ends
                assert finished >= end - 1e-6, (job_id, attempt, finished, end)


def random_jobs(
    rng: random.Random,
    n: int,
    first_id: int,
    *,
    faults: bool = True,
    max_gpus: int = 8,
    max_vram_mib: int = 79 * 1024,
) -> list[tuple[JobSpec, tuple[int, ...]]]:
    """`n` jobs of every kind a lab queues: GPU counts and VRAM, priorities, projects,
    dependencies on earlier jobs, retries, timeouts, failures and leftover processes; each
    fits the machine (`max_gpus`, `max_vram_mib`), as submission makes sure."""
    out = []
    for k in range(n):
        gpus = min(max_gpus, rng.choices([0, 1, 2, 4], [1, 6, 2, 1])[0])
        vram = None if gpus == 0 or rng.random() < 0.4 else rng.choice([4, 8, 16, 30]) * 1024
        vram = None if vram is None else min(vram, max_vram_mib)
        duration = rng.choice([1, 3, 10, 20, 60])
        words = [f"sim {duration}"]
        if rng.random() < 0.15:
            words.append(f"exit={rng.choice([1, 2, 137])}")
        if faults and rng.random() < 0.05:
            words.append(f"leftover={rng.choice([3, 20])}")
        if faults and rng.random() < 0.03:
            words.append("ignore-term")
        timeout = duration / 2 if rng.random() < 0.05 else None
        spec = JobSpec(
            name=f"j{first_id + k}",
            command=" ".join(words),
            cwd="/",
            gpus=gpus,
            vram_mib=vram,
            priority=rng.choice([0, 0, 0, 1, -1]),
            project=rng.choice(["alpha", "beta", "gamma"]),
            retries=rng.choice([0, 0, 1, 2]),
            timeout_s=timeout,
        )
        deps: tuple[int, ...] = ()
        if k and rng.random() < 0.1:
            deps = (first_id + rng.randrange(k),)
        out.append((spec, deps))
    return out
