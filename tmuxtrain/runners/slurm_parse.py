"""What Slurm's clients print -> what the Slurm runner needs. Pure functions, tested on the
exact lines Slurm 22.05 prints (docs/slurm-facts.md): one `squeue` per tick for all jobs,
`sacct -c` for the exit codes of ended ones, `sinfo` for partitions and free GPUs."""

from __future__ import annotations

import time
from dataclasses import dataclass

# squeue -O with a separator after each field (22.05 takes `Field:|`).
SQUEUE_FIELDS = (
    "JobArrayID", "JobID", "ArrayJobID", "ArrayTaskID", "State", "Reason", "StartTime",
    "EndTime", "RestartCnt", "Comment",
)  # fmt: skip
SQUEUE_FORMAT = ",".join(f"{f}:|" for f in SQUEUE_FIELDS)
SACCT_FIELDS = "JobIDRaw,State,ExitCode,End"
SINFO_FORMAT = "NodeList:|,Partition:|,StateLong:|,Gres:|,GresUsed:|"
FINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
     "BOOT_FAIL", "DEADLINE"}
)  # fmt: skip
RUNNING = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "STOPPED", "SUSPENDED"})


@dataclass(frozen=True)
class SqRow:
    """One job (or array task) as squeue shows it. `display` is the id a user sees
    (`123`, `123_4`, `123_[5-7%2]` for tasks not started yet), `raw` its own job id."""

    display: str
    raw: str
    state: str
    reason: str
    start: float | None
    end: float | None
    restarts: int
    comment: str


def parse_time(text: str) -> float | None:
    """Slurm's local `2026-12-06T02:10:31` as POSIX seconds (None for N/A, NONE, Unknown)."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def parse_squeue(text: str) -> dict[str, SqRow]:
    """`squeue -h -t all -O SQUEUE_FORMAT` -> rows by display id (and pending array
    groups by each task id they still hold, `123_[5,7]` -> `123_5`, `123_7`)."""
    out: dict[str, SqRow] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < len(SQUEUE_FIELDS):
            continue
        display, raw, array, _task, state, reason, start, end, restarts, comment = parts[:10]
        row = SqRow(
            display, raw, state, reason, parse_time(start), parse_time(end),
            int(restarts) if restarts.isdigit() else 0, comment,
        )  # fmt: skip
        if "[" in display:  # tasks not started yet: `123_[5,7%2]` or `123_[5-7]`
            for t in expand_tasks(display[display.index("[") + 1 : display.rindex("]")]):
                out[f"{array}_{t}"] = row
        else:
            out[display] = row
    return out


def expand_tasks(spec: str) -> list[int]:
    """Slurm's task list `5-7,9%2` -> [5, 6, 7, 9] (the `%K` throttle dropped)."""
    out: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += list(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass(frozen=True)
class Ended:
    """An ended Slurm job: its exit code (None when Slurm gives none that means one), what
    happened in words, and whether Slurm cancelled it (scancel, a failed dependency)."""

    exit_code: int | None
    note: str
    cancelled: bool
    ended_at: float | None


def parse_sacct(text: str) -> dict[str, Ended]:
    """`sacct -c -n --parsable2 -o SACCT_FIELDS` -> the last record of each raw job id (a
    requeued job has one per run)."""
    out: dict[str, Ended] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 4 or not parts[0].strip():
            continue
        raw, state, code, end = (p.strip() for p in parts[:4])
        out[raw] = ended(state, code, parse_time(end))
    return out


def ended(state: str, exit_code: str, ended_at: float | None) -> Ended:
    """A final state and `CODE:SIGNAL` -> exit code and note. The batch script's own exit
    code wins; a signal is 128 + its number, as a shell reports it."""
    state = state.split()[0] if state else ""
    code_s, _, sig_s = exit_code.partition(":")
    code = int(code_s) if code_s.isdigit() else None
    sig = int(sig_s) if sig_s.isdigit() else 0
    if state == "CANCELLED":
        return Ended(None, "cancelled in Slurm", True, ended_at)
    if state == "TIMEOUT":
        return Ended(None, "Slurm's time limit", False, ended_at)
    if state == "COMPLETED":
        return Ended(code if code is not None else 0, "", False, ended_at)
    if state == "FAILED" and sig == 53 and not code:
        return Ended(None, "Slurm could not launch it (JobLaunchFailure)", False, ended_at)
    if sig and not code:
        return Ended(128 + sig, f"killed by signal {sig}", False, ended_at)
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return Ended(None, f"Slurm: {state.lower().replace('_', ' ')}", False, ended_at)
    if state == "OUT_OF_MEMORY":
        return Ended(code if code else 137, "Slurm: out of memory (host RAM)", False, ended_at)
    return Ended(code, "" if code else f"Slurm: {state.lower()}", False, ended_at)


@dataclass(frozen=True)
class NodeGpus:
    """A node of the cluster: its partitions, state, GPUs and GPUs in use."""

    node: str
    partitions: tuple[str, ...]
    state: str
    gpus: int
    gpus_used: int


def gres_count(text: str) -> int:
    """GPUs in a gres string: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:2,shard:8` -> 4, 4, 2."""
    total = 0
    for item in text.split(","):
        fields = item.split("(")[0].split(":")
        if fields[0] == "gpu" and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def parse_sinfo(text: str) -> list[NodeGpus]:
    """`sinfo -N -h -O SINFO_FORMAT` -> one entry per node (a node in several partitions
    shows once a partition: merged)."""
    nodes: dict[str, NodeGpus] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5 or not parts[0]:
            continue
        node, part, state, gres, used = parts[:5]
        old = nodes.get(node)
        parts_of = (*old.partitions, part) if old else (part,)
        nodes[node] = NodeGpus(node, parts_of, state, gres_count(gres), gres_count(used))
    return list(nodes.values())
