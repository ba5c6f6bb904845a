"""Job rows <-> `core.model.Job`, and the contract's job JSON, each defined once.

The job JSON (`ls --json`, `show --json`) is one list of fields, each with its SQL
expression over a `jobs` row and the same value from a `Job`: SQLite builds `ls --json`
from the former (listing 10,000 jobs takes ~80 ms that way against ~290 ms for decoding
every spec in Python) and `job_json` from the latter, so the two cannot drift.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tmuxtrain.core.model import Job, JobSpec, JobState

JOB_COLUMNS = (
    "id, name, state, spec, after_ids, held, attempt, gpus, exit_code, reason, log_path, "
    "tmux_window, tmux_pane, pid, pid_start, master_port, submitted_at, started_at, "
    "finished_at, not_before, parent_id, cancel_requested_at, cancel_reason, metrics, pid_boot, "
    "notes, queued, external_id, vram_source, vram_request_mib, vram_peak_mib, restarts, "
    "after_evals, gpu_share"
)
# Columns a caller may set through update()/transition(); everything else is derived.
WRITABLE = frozenset(
    {
        "held", "attempt", "gpus", "exit_code", "reason", "log_path", "tmux_window", "tmux_pane",
        "pid", "pid_start", "pid_boot", "master_port", "started_at", "finished_at", "not_before",
        "cancel_requested_at", "cancel_reason", "metrics", "log_offset", "priority", "queued",
        "external_id", "vram_source", "vram_request_mib", "vram_peak_mib", "restarts",
        "gpu_share",
    }
)  # fmt: skip
_STATES = {s.value: s for s in JobState}


def iso(t: float | None) -> str | None:
    """ISO 8601 local time with its offset, to the second (`2026-11-29T21:25:50+01:00`)."""
    return None if t is None else _iso_second(int(t))


@functools.lru_cache(maxsize=4096)
def _iso_second(t: int) -> str:
    # time.localtime is several times cheaper than datetime's time-zone lookup, and a queue
    # of 10,000 jobs has 30,000 timestamps to format.
    lt = time.localtime(t)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    hh, mm = divmod(abs(off) // 60, 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f"{sign}{hh:02d}:{mm:02d}"


def runtime_s(started: float | None, finished: float | None, now: float) -> float | None:
    """Seconds a job has run (until `now` while it runs), to the millisecond."""
    if started is None:
        return None
    return round((finished if finished is not None else now) - started, 3)


@dataclass(frozen=True)
class Field:
    """One key of the job JSON: its SQL over a `jobs` row, and the same from a Job."""

    key: str
    sql: str
    py: Callable[[Job, float], Any]


def _spec(path: str, default: str = "") -> str:
    expr = f"json_extract(spec, '$.{path}')"
    return f"coalesce({expr}, {default})" if default else expr


JOB_FIELDS: tuple[Field, ...] = (
    Field("id", "id", lambda j, now: j.id),
    Field("name", "name", lambda j, now: j.name),
    Field("state", "state", lambda j, now: j.state.value),
    Field("command", _spec("command"), lambda j, now: j.spec.command),
    Field("cwd", _spec("cwd"), lambda j, now: j.spec.cwd),
    Field("env", f"json({_spec('env', repr('{}'))})", lambda j, now: dict(j.spec.env)),
    Field("gpus_requested", _spec("gpus", "1"), lambda j, now: j.spec.gpus),
    Field(
        "vram_mib",
        f"iif(vram_source = 'declared', {_spec('vram_mib')}, vram_request_mib)",
        lambda j, now: j.vram_mib,
    ),
    Field("vram_declared_mib", _spec("vram_mib"), lambda j, now: j.spec.vram_mib),
    Field("vram_source", "vram_source", lambda j, now: j.vram_source),
    Field("vram_peak_mib", "vram_peak_mib", lambda j, now: j.vram_peak_mib),
    Field("gpus", "json(gpus)", lambda j, now: list(j.gpus)),
    Field("priority", _spec("priority", "0"), lambda j, now: j.spec.priority),
    Field(
        "project",
        f"coalesce(nullif({_spec('project')}, ''), 'default')",
        lambda j, now: j.spec.project or "default",
    ),
    Field("after", "json(after_ids)", lambda j, now: list(j.after_ids)),
    Field("after_evals", "json(after_evals)", lambda j, now: list(j.after_evals)),
    Field("held", "json(iif(held, 'true', 'false'))", lambda j, now: j.held),
    Field("attempt", "attempt", lambda j, now: j.attempt),
    Field("max_retries", _spec("retries", "0"), lambda j, now: j.spec.retries),
    Field("restarts", "restarts", lambda j, now: j.restarts),
    Field(
        "preemptible",
        f"json(iif({_spec('preemptible')}, 'true', 'false'))",
        lambda j, now: j.spec.preemptible,
    ),
    Field("exit_code", "exit_code", lambda j, now: j.exit_code),
    Field("log_path", "log_path", lambda j, now: j.log_path),
    Field("tmux_window", "tmux_window", lambda j, now: j.tmux_window),
    Field("tmux_pane", "tmux_pane", lambda j, now: j.tmux_pane),
    Field("submitted_at", "iso(submitted_at)", lambda j, now: iso(j.submitted_at)),
    Field("started_at", "iso(started_at)", lambda j, now: iso(j.started_at)),
    Field("finished_at", "iso(finished_at)", lambda j, now: iso(j.finished_at)),
    Field(
        "runtime_s",
        "runtime_s(started_at, finished_at, :now)",
        lambda j, now: runtime_s(j.started_at, j.finished_at, now),
    ),
    Field("timeout_s", _spec("timeout_s"), lambda j, now: j.spec.timeout_s),
    Field("parent_id", "parent_id", lambda j, now: j.parent_id),
    Field("metrics", "json(metrics)", lambda j, now: dict(j.metrics)),
    Field("reason", "reason", lambda j, now: j.reason),
    Field("notes", "json(notes)", lambda j, now: list(j.notes)),
    Field("runner", f"coalesce({_spec('runner')}, 'tmux')", lambda j, now: j.spec.runner or "tmux"),
    Field("external_id", "external_id", lambda j, now: j.external_id),
)
JOB_JSON_SQL = "json_object(" + ", ".join(f"'{f.key}', {f.sql}" for f in JOB_FIELDS) + ")"


def job_json(job: Job, now: float | None = None) -> dict[str, Any]:
    """A job as the contract's JSON (`ls --json`, `show --json`)."""
    t = time.time() if now is None else now
    return {f.key: f.py(job, t) for f in JOB_FIELDS}


def _ints(text: str) -> tuple[int, ...]:
    return () if text == "[]" else tuple(json.loads(text))  # most jobs: no GPUs, no deps


class SpecCache:
    """Decoded specs by their JSON text, in two generations: a spec looked up again moves
    to the young one, and when the young one outgrows `limit` the old one is dropped. It
    holds at most 2 x limit specs, and the queue a scheduler re-reads stays decoded, so
    its memory follows the queue's size, never the history's."""

    def __init__(self, floor: int = 1024) -> None:
        self.floor = self.limit = floor
        self.young: dict[str, JobSpec] = {}
        self.old: dict[str, JobSpec] = {}

    def get(self, text: str) -> JobSpec | None:
        spec = self.young.get(text)
        if spec is None:
            spec = self.old.get(text)
            if spec is not None:
                self[text] = spec
        return spec

    def __setitem__(self, text: str, spec: JobSpec) -> None:
        self.young[text] = spec
        if len(self.young) > self.limit:
            self.old, self.young = self.young, {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def fit(self, working: int) -> None:
        """Room for `working` specs (the pending queue) between two turns."""
        self.limit = max(self.floor, 2 * working)


def row_to_job(row: Sequence[Any], spec_cache: SpecCache | None = None) -> Job:
    spec_text = row[3]
    spec = spec_cache.get(spec_text) if spec_cache is not None else None
    if spec is None:
        spec = JobSpec.from_dict(json.loads(spec_text))
        if spec_cache is not None:
            spec_cache[spec_text] = spec
    return Job(
        id=row[0],
        spec=spec,
        state=_STATES[row[2]],
        after_ids=_ints(row[4]),
        held=bool(row[5]),
        attempt=row[6],
        gpus=_ints(row[7]),
        exit_code=row[8],
        reason=row[9],
        log_path=row[10],
        tmux_window=row[11],
        tmux_pane=row[12],
        pid=row[13],
        pid_start=row[14],
        master_port=row[15],
        submitted_at=row[16],
        started_at=row[17],
        finished_at=row[18],
        not_before=row[19],
        parent_id=row[20],
        cancel_requested_at=row[21],
        cancel_reason=row[22],
        metrics={} if row[23] == "{}" else json.loads(row[23]),
        pid_boot=row[24],
        notes=() if row[25] == "[]" else tuple(json.loads(row[25])),
        queued=bool(row[26]),
        external_id=row[27],
        vram_source=row[28],
        vram_request_mib=row[29],
        vram_peak_mib=row[30],
        restarts=row[31],
        after_evals=_ints(row[32]),
        gpu_share=row[33],
    )


def finite(value: Any) -> Any:
    """A metric value JSON can hold: a diverged run's NaN or inf becomes the text "nan",
    "inf" or "-inf" (JSON has no such numbers, and hiding a NaN loss is the worst case)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def encode(field: str, value: Any) -> Any:
    if field in ("gpus", "after_ids"):
        return json.dumps(list(value))
    if field == "metrics":
        return json.dumps(value, separators=(",", ":"))
    if field in ("held", "queued"):
        return int(bool(value))
    return value


def check_writable(fields: dict[str, Any]) -> None:
    bad = set(fields) - WRITABLE
    if bad:
        raise ValueError(f"not writable: {bad}")
