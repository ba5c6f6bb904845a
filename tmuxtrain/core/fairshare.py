"""Fair-share by recent usage, as Slurm's multifactor fair-share counts it. Pure.

A project's usage is the GPU-seconds its attempts held, each second weighted by its age,
halving every `half_life` seconds:

    usage(now) = sum over attempts of  share * integral over [start, end] of 2^-((now - t) / H) dt
               = share * H / ln 2 * (2^-((now - end) / H) - 2^-((now - start) / H))

where `share` is the attempt's GPU-equivalents (1 per whole GPU, vram / memory of the GPU
per shared one) and `end` is now for a running attempt. A project's standing is

    standing = (usage + held * H / 1440) / share of the project      (projects without one: 1)

`held` being the GPU-equivalents its running jobs hold, and those the decision gave it so
far: each counts for a minute per day of half-life (60 GPU-seconds at the default), so that
projects of equal usage alternate even when several GPUs free at once. The project with the
lowest standing goes next; usage dominates as soon as jobs have run a while.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

from tmuxtrain.core.model import GpuInfo, Job

LN2 = math.log(2)
HOLD_CHARGE = 1 / 1440  # of the half-life, per GPU-equivalent held: 60 s per day


def gpu_share(gpus: Sequence[int], vram_mib: int | None, totals: Mapping[int, int | None]) -> float:
    """GPU-equivalents an attempt on `gpus` holds: 1 per GPU it has whole (`vram_mib`
    None), else its vram over each GPU's memory (at most 1; unknown memory counts whole)."""
    if vram_mib is None:
        return float(len(gpus))
    out = 0.0
    for i in gpus:
        total = totals.get(i)
        out += 1.0 if not total else min(1.0, vram_mib / total)
    return out


def totals_of(gpus: Iterable[GpuInfo]) -> dict[int, int | None]:
    return {g.index: g.memory_total_mib for g in gpus}


def held_by(job: Job) -> float:
    """The GPU-equivalents a running job holds (recorded at its start; older rows: its GPUs)."""
    return job.gpu_share if job.gpu_share is not None else float(len(job.gpus))


def attempt_usage(
    share: float, started: float, ended: float | None, now: float, half_life: float
) -> float:
    """Decayed GPU-seconds of one attempt that held `share` GPU-equivalents from `started`
    to `ended` (None: still running), seen at `now`."""
    if share <= 0:
        return 0.0
    end = now if ended is None else min(ended, now)
    if end <= started:
        return 0.0
    return (
        share
        * half_life
        / LN2
        * (math.pow(2.0, -(now - end) / half_life) - math.pow(2.0, -(now - started) / half_life))
    )


class Usage:
    """Decayed GPU-seconds per project of finished attempts, kept as of one time and
    carried forward by decay (each attempt is added once, as it is recorded)."""

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self.values: dict[str, float] = {}
        self.at: float | None = None

    def _move_to(self, now: float) -> None:
        if self.at is not None and now > self.at:
            f = math.pow(2.0, -(now - self.at) / self.half_life)
            for p in self.values:
                self.values[p] *= f
        if self.at is None or now > self.at:
            self.at = now

    def add(self, project: str, share: float, started: float, ended: float, now: float) -> None:
        self._move_to(now)
        assert self.at is not None
        u = attempt_usage(share, started, ended, self.at, self.half_life)
        if u > 0:
            self.values[project] = self.values.get(project, 0.0) + u

    def of(self, running: Iterable[Job], now: float) -> dict[str, float]:
        """Usage per project at `now`: the finished attempts, and the running jobs so far."""
        self._move_to(now)
        out = dict(self.values)
        for j in running:
            if j.started_at is not None:
                p = j.spec.project
                u = attempt_usage(held_by(j), j.started_at, None, now, self.half_life)
                out[p] = out.get(p, 0.0) + u
        return out


def standings(
    usage: Mapping[str, float],
    running: Iterable[Job],
    shares: Mapping[str, float],
    half_life: float,
) -> dict[str, float]:
    """Each project's standing before a decision (see the module docstring); projects
    with neither usage nor running jobs are absent (standing 0)."""
    charge = half_life * HOLD_CHARGE
    raw = dict(usage)
    for j in running:
        p = j.spec.project
        raw[p] = raw.get(p, 0.0) + held_by(j) * charge
    return {p: u / shares.get(p, 1.0) for p, u in raw.items()}


class FairOrder:
    """The pending jobs in fair-share order, decided as they are taken: repeatedly the best
    job (priority, then id) of the project with the lowest standing; ties between
    projects go to the better job. `took(job, share)` after a job starts adds its charge to
    its project (a job that waits adds nothing), so the order follows what really starts.

    `jobs` must be in priority-then-id order.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        start: Mapping[str, float],
        shares: Mapping[str, float],
        half_life: float,
    ) -> None:
        self.lists: dict[str, list[Job]] = {}
        for j in jobs:
            p = j.spec.project
            lst = self.lists.get(p)
            if lst is None:
                self.lists[p] = [j]
            else:
                lst.append(j)
        self.start = start
        self.shares = shares
        self.charge = half_life * HOLD_CHARGE
        self.standing: dict[str, float] = {p: start.get(p, 0.0) for p in self.lists}
        self._taken = 0.0

    def took(self, job: Job, share: float) -> None:
        """`job` (just yielded) starts, holding `share` GPU-equivalents."""
        self._taken += share

    def __iter__(self) -> Iterator[Job]:
        lists, standing = self.lists, self.standing
        heap = [(standing[p], -lst[0].spec.priority, lst[0].id, p) for p, lst in lists.items()]
        heapq.heapify(heap)
        pos = dict.fromkeys(lists, 0)
        while heap:
            key, _, _, p = heapq.heappop(heap)
            lst = lists[p]
            per = self.charge / self.shares.get(p, 1.0)
            i, n = pos[p], len(lst)
            # Below the next project and nothing taken: stay, with no comparison (most jobs
            # of a full queue wait, and the loop runs once per pending job).
            tied = bool(heap) and key >= heap[0][0]
            while i < n:
                job = lst[i]
                i += 1
                self._taken = 0.0
                yield job
                if self._taken:
                    key += self._taken * per
                    standing[p] = key
                elif not tied:
                    continue
                if i == n or not heap:
                    continue
                top = heap[0]
                tied = key >= top[0]
                if key > top[0] or (
                    key == top[0] and (-lst[i].spec.priority, lst[i].id) > (top[1], top[2])
                ):
                    heapq.heappush(heap, (key, -lst[i].spec.priority, lst[i].id, p))
                    pos[p] = i
                    break


def report(
    usage: Mapping[str, float],
    running: Sequence[Job],
    pending: Sequence[Job],
    shares: Mapping[str, float],
    half_life: float,
) -> list[dict[str, object]]:
    """Each project's fair-share line (`tmuxtrain status`), next in line first: its share
    and usage (decayed GPU-seconds), each as a part of all projects' (`share_pct`,
    `usage_pct`), its standing (the key the scheduler orders by) and its jobs. Projects:
    those with usage, jobs or a configured share."""
    now_standing = standings(usage, running, shares, half_life)
    projects = (
        {p for p, u in usage.items() if u > 0}
        | {j.spec.project for j in (*running, *pending)}
        | set(shares)
    )
    total_share = sum(shares.get(p, 1.0) for p in projects) or 1.0
    total_use = sum(usage.get(p, 0.0) for p in projects)
    rows: list[dict[str, object]] = []
    for p in sorted(projects, key=lambda p: (now_standing.get(p, 0.0), p)):
        use = usage.get(p, 0.0)
        rows.append(
            {
                "project": p,
                "share": shares.get(p, 1.0),
                "share_pct": round(100 * shares.get(p, 1.0) / total_share, 1),
                "usage_gpu_s": round(use, 1),
                "usage_pct": round(100 * use / total_use, 1) if total_use else 0.0,
                "standing": round(now_standing.get(p, 0.0), 3),
                "running": sum(j.spec.project == p for j in running),
                "pending": sum(j.spec.project == p for j in pending),
            }
        )
    return rows
