"""Jobs on a Slurm cluster, behind the one Runner protocol: a job keeps its tmuxtrain id,
goes through the same store, scheduler, CLI and dashboard as a local one, and records its
Slurm job id (`123`, or `123_17` as task 17 of an array, where the task index is the
tmuxtrain id).

- Submit with `sbatch --parsable`; the jobs of one sweep submitted together become one
  `--array` (their ids as the task indices, `%K` from `slurm.array_limit`).
- Output goes to the job's own log file (`logs/ID.log`, absolute, appended), read by the
  same log tailer as a local job's.
- State: one `squeue` per tick for all jobs (pending reasons, starts), `sacct -c` for the
  exit codes of those that ended (there is no slurmdbd on a workstation's cluster).
- Dependencies on jobs already in Slurm are `--dependency=afterok:` with
  `--kill-on-invalid-dep=yes`; the others wait in tmuxtrain until they can be submitted.
- Retries are tmuxtrain's: each attempt is a submission of its own with its own exit code.
- Cancel: `scancel --signal=INT|TERM --full`, then `scancel --signal=KILL --full`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tmuxtrain import logfile
from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.model import Job
from tmuxtrain.runners.base import (
    Capabilities,
    Exit,
    Handle,
    NoConnection,
    Progress,
    Started,
    StartRequest,
    Step,
    run_token,
)
from tmuxtrain.runners.slurm_parse import (
    FINAL,
    RUNNING,
    SACCT_FIELDS,
    SINFO_FORMAT,
    SQUEUE_FORMAT,
    Partition,
    SqRow,
    parse_sacct,
    parse_sinfo,
    parse_squeue,
    partitions,
)
from tmuxtrain.runners.wrapper import exit_banner, start_banner
from tmuxtrain.settings import Settings

log = logging.getLogger("tmuxtrain.runner")
POLL_S = 1.0
CLIENT_TIMEOUT_S = 20.0
# Variables a job gets from Slurm, never from the submitter's environment.
FROM_SLURM = ("CUDA_VISIBLE_DEVICES", "TMUXTRAIN_GPUS", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class SlurmOptions:
    """The config's `slurm:` section: where and how jobs are submitted."""

    partition: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()
    array_limit: int | None = None  # `%K`: tasks of one array running at once
    requeue: bool = False  # --requeue --signal=B:USR1@90: preemption-friendly

    @classmethod
    def from_config(cls, section: dict[str, object]) -> SlurmOptions:
        extra = section.get("extra") or ()
        if isinstance(extra, str):
            extra = shlex.split(extra)
        limit = section.get("array_limit")
        return cls(
            partition=str(section["partition"]) if section.get("partition") else None,
            account=str(section["account"]) if section.get("account") else None,
            extra=tuple(str(x) for x in extra) if isinstance(extra, (list, tuple)) else (),
            array_limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            requeue=section.get("requeue") is True,
        )


def job_body(request: StartRequest) -> list[str]:
    """The bash lines of one job: its environment, its folder, its command as a child in
    its own process group (INT, TERM and Slurm's USR1 to the batch shell are passed on to
    it), and the banners and exit status a local job's wrapper prints. bash, not sh:
    dash cannot give a background child back its SIGINT."""
    q = shlex.quote
    job = request.job
    command = job.spec.command
    if job.spec.resume and job.attempt > 1:  # see preemption
        command = job.spec.resume
    env = {k: v for k, v in request.env.items() if k not in FROM_SLURM}
    lines = [f"export {k}={q(v)}" for k, v in sorted(env.items())]
    lines += [
        'export TMUXTRAIN_GPUS="${SLURM_JOB_GPUS:-}"',
        'export TMUXTRAIN_RESTARTS="${SLURM_RESTART_COUNT:-0}"',
        'MASTER_ADDR="$(scontrol show hostnames "${SLURM_JOB_NODELIST:-}" 2>/dev/null | head -n1)"',
        'export MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"',
        "export MASTER_PORT=$((20000 + ${SLURM_JOB_ID:-0} % 40000))",
        f"printf '[tmuxtrain] {start_banner(job.id, job.attempt)}%s\\n' {q(job.spec.cwd)}",
        f"if cd {q(job.spec.cwd)}; then",
        # Job control for a moment: the command gets a process group of its own and the
        # default INT (a background child of a shell without it ignores INT for good).
        "  set -m",
        f"  /bin/sh -c {q(command)} &",
        "  pid=$!",
        "  set +m",
        '  for sig in INT TERM USR1 USR2; do trap "kill -$sig -$pid 2>/dev/null" $sig; done',
        "  while :; do wait $pid; code=$?; kill -0 $pid 2>/dev/null || break; done",
        "else",
        f"  printf '[tmuxtrain] cannot cd to %s\\n' {q(job.spec.cwd)}",
        "  code=126",
        "fi",
        f"printf '[tmuxtrain] {exit_banner(job.id, job.attempt)} %s\\n' \"$code\"",
        'exit "$code"',
    ]
    return lines


def batch_script(requests: Sequence[StartRequest]) -> str:
    """One job's batch script, or an array's: each task runs the job whose id is its
    index."""
    lines = ["#!/bin/bash", "# tmuxtrain: written by the scheduler for Slurm"]
    if len(requests) == 1:
        return "\n".join([*lines, *job_body(requests[0])]) + "\n"
    lines.append('case "$SLURM_ARRAY_TASK_ID" in')
    for r in requests:
        lines.append(f"{r.job.id})")
        lines += ["  " + line for line in job_body(r)]
        lines.append("  ;;")
    lines += ["esac", 'echo "[tmuxtrain] no job for task $SLURM_ARRAY_TASK_ID"', "exit 2"]
    return "\n".join(lines) + "\n"


def sweep_key(r: StartRequest) -> tuple[object, ...]:
    """Jobs that may share one `--array`: one file entry (a matrix), the same resources
    and the same dependencies."""
    s = r.job.spec
    return (s.source, s.gpus, s.timeout_s, s.inherit_env, r.after, r.job.attempt)


class SlurmRunner(NoConnection):
    """The Runner protocol over `sbatch`, `squeue`, `sacct -c` and `scancel`."""

    kind = "slurm"
    capabilities = Capabilities(places_gpus=False, windows=False, queues=True)

    def __init__(
        self,
        settings: Settings,
        options: SlurmOptions,
        run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self._run = run or _run
        self.submitting: list[StartRequest] = []
        self.raw: dict[str, str] = {}  # Slurm id (123_17) -> its own job id (124)
        self._rows: tuple[float, dict[str, SqRow]] | None = None
        self.fresh = False  # a job was submitted since the last squeue: look again

    # ---- submitting -------------------------------------------------------------------

    def start(self, request: StartRequest) -> None:
        self.submitting.append(request)  # submitted together in `started`: arrays

    def started(self, wait: bool = False) -> list[Started]:
        todo, self.submitting = self.submitting, []
        groups: dict[tuple[object, ...], list[StartRequest]] = {}
        for r in todo:
            groups.setdefault(sweep_key(r), []).append(r)
        out: list[Started] = []
        for group in groups.values():
            out += self._submit(group)
        return out

    def _submit(self, group: list[StartRequest]) -> list[Started]:
        first = group[0].job
        script = os.path.join(self.settings.run_dir, f"slurm-{first.id}-{first.attempt}.sh")
        with open(script, "w") as f:
            f.write(batch_script(group))
        os.chmod(script, 0o700)
        argv = self._sbatch_argv(group, script)
        try:
            proc = self._run(argv)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(script)  # sbatch keeps its own copy
        if proc.returncode == 127:
            return [_failed(r, "sbatch not found: is this a Slurm login node?") for r in group]
        if proc.returncode != 0:
            why = (proc.stderr or proc.stdout).strip().splitlines()
            return [_failed(r, why[-1] if why else f"sbatch exit {proc.returncode}") for r in group]
        slurm_id = proc.stdout.strip().split(";")[0]
        self.fresh = True  # the next look at the queue must see it
        if len(group) == 1:
            return [_ok(group[0], slurm_id)]
        return [_ok(r, f"{slurm_id}_{r.job.id}") for r in group]

    def _sbatch_argv(self, group: list[StartRequest], script: str) -> list[str]:
        job, o = group[0].job, self.options
        name = f"{job.id}-{job.name}" if len(group) == 1 else f"{job.id}+-{job.name}"
        argv = ["sbatch", "--parsable", f"--job-name={_safe(name)}", "--open-mode=append"]
        if len(group) == 1:
            argv += [f"--output={job.log_path}", f"--comment={self._token(job)}"]
        else:
            logs = os.path.dirname(job.log_path)
            tasks = ",".join(str(r.job.id) for r in group)
            limit = f"%{o.array_limit}" if o.array_limit else ""
            argv += [f"--array={tasks}{limit}", f"--output={logs}/%a.log"]
            argv.append(f"--comment={self._array_token(job.attempt)}")
        argv += [f"--chdir={job.spec.cwd}", f"--export={'ALL' if job.spec.inherit_env else 'NONE'}"]
        if job.spec.gpus:
            argv.append(f"--gres=gpu:{job.spec.gpus}")
        if job.spec.timeout_s:
            argv.append(f"--time={_minutes(job.spec.timeout_s)}")
        if group[0].after:
            argv += [
                "--dependency=afterok:" + ":".join(group[0].after),
                "--kill-on-invalid-dep=yes",
            ]
        if o.partition:
            argv.append(f"--partition={o.partition}")
        if o.account:
            argv.append(f"--account={o.account}")
        if o.requeue:
            argv += ["--requeue", "--signal=B:USR1@90"]
        return [*argv, *o.extra, script]

    def _token(self, job: Job) -> str:
        return run_token(self.settings.home, job.id, job.attempt)

    def _array_token(self, attempt: int) -> str:
        """The comment of an array: its tasks are found by their index (the job id)."""
        return run_token(self.settings.home, 0, attempt).rsplit("-", 2)[0] + f"-array-{attempt}"

    def in_flight(self) -> int:
        return len(self.submitting)

    # ---- state ------------------------------------------------------------------------

    def _queue(self, now: float) -> dict[str, SqRow]:
        """One squeue for everything, at most once per POLL_S (a busy scheduler ticks
        often; slurmctld answers every client of the cluster)."""
        if self._rows is not None and 0 <= now - self._rows[0] < POLL_S and not self.fresh:
            return self._rows[1]
        self.fresh = False
        proc = self._run(["squeue", "-h", "-t", "all", "-O", SQUEUE_FORMAT])
        rows = parse_squeue(proc.stdout) if proc.returncode == 0 else {}
        if proc.returncode != 0:
            log.warning("squeue failed: %s", proc.stderr.strip()[:200])
        for ext, row in rows.items():
            if "[" not in row.display:
                self.raw[ext] = row.raw
        self._rows = (now, rows)
        return rows

    def progress(self, queued: Sequence[Job], now: float) -> list[Progress]:
        rows = self._queue(now)
        out = []
        for job in queued:
            row = rows.get(job.external_id or "")
            if row is None:
                continue
            if row.state in RUNNING:
                out.append(Progress(job.id, job.attempt, started_at=row.start or now))
            elif row.state == "PENDING":
                why = row.reason if row.reason not in ("None", "") else "waiting"
                again = f", requeued {row.restarts}x" if row.restarts else ""
                out.append(Progress(job.id, job.attempt, reason=f"in Slurm: {why}{again}"))
        return out

    def exits(self, running: Sequence[Job], now: float, *, full: bool, nudged: bool) -> list[Exit]:
        jobs = [j for j in running if j.external_id]
        if not jobs:
            return []
        rows = self._queue(now)
        done = [j for j in jobs if (rows.get(j.external_id or "") or _GONE).state in FINAL]
        if not done:
            return []
        raws = {j.id: self.raw.get(j.external_id or "", j.external_id or "") for j in done}
        proc = self._run(
            ["sacct", "-c", "-n", "--parsable2", "-o", SACCT_FIELDS, "-j", ",".join(raws.values())]
        )
        records = parse_sacct(proc.stdout)
        out = []
        for job in done:
            e = records.get(raws[job.id])
            row = rows.get(job.external_id or "")
            if e is None:
                if row is not None and row.state in FINAL and now - (row.end or now) < 10:
                    continue  # the completion record is on its way
                out.append(Exit(job.id, job.attempt, None, "lost: Slurm no longer knows it"))
                continue
            note = e.note
            if e.cancelled and row is not None and "Dependency" in row.reason:
                note = "a dependency failed (Slurm cancelled it)"
            out.append(
                Exit(job.id, job.attempt, e.exit_code, note, ended_at=e.ended_at,
                     cancelled=e.cancelled and job.cancel_requested_at is None,
                     started_at=row.start if row is not None else None)
            )  # fmt: skip
        return out

    def find(self, job: Job) -> Handle | Exit | None:
        """A claimed job whose Slurm id was never recorded: found by its run token in
        squeue's comment, or never submitted."""
        token, array = self._token(job), self._array_token(job.attempt)
        self.fresh = True
        for ext, row in self._queue(0.0).items():
            if row.comment == token or (row.comment == array and ext.endswith(f"_{job.id}")):
                return Handle(external_id=ext)
        return None

    # ---- stopping ---------------------------------------------------------------------

    def signal(self, job: Job, step: Step) -> None:
        if not job.external_id:
            return
        sig = {Step.INTERRUPT: "INT", Step.TERM: "TERM", Step.KILL: "KILL"}[step]
        if job.queued and job.started_at is None:
            argv = ["scancel", job.external_id]  # still waiting in Slurm: just drop it
        else:
            argv = ["scancel", f"--signal={sig}", "--full", job.external_id]
        proc = self._run(argv)
        if proc.returncode != 0:
            log.warning("%s: %s", " ".join(argv), proc.stderr.strip()[:200])

    def leftovers(self, job: Job, step: Step | None) -> int:
        return 0  # Slurm ends every process of a job

    # ---- output and housekeeping ------------------------------------------------------

    def output_complete(self, job: Job) -> bool:
        return logfile.contains_near_end(job.log_path, exit_banner(job.id, job.attempt))

    def output_tail(self, job: Job) -> str:
        return logfile.tail(job.log_path, 65536).decode("utf-8", "replace")

    def forget(self, job: Job) -> None:
        self.raw.pop(job.external_id or "", None)

    def close_windows(self, windows: Sequence[str]) -> None:
        pass

    def next_event(self) -> float:
        return float("inf")

    def capabilities_of(self, job: Job) -> Capabilities:
        return self.capabilities


_GONE = SqRow("", "", "COMPLETED", "", None, None, 0, "")  # not in squeue any more: ask sacct


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """A Slurm client; a missing one or one that hangs (no slurm.conf: it retries for a
    minute) is a failed call, never a stalled scheduler."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
            timeout=CLIENT_TIMEOUT_S,
        )  # fmt: skip
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: no answer in time")


def cluster(run: Callable[[list[str]], subprocess.CompletedProcess[str]] = _run) -> list[Partition]:
    """The cluster's partitions with their GPUs and free GPUs (one `sinfo`); RunnerError
    with Slurm's words when it cannot be asked."""
    r = run(["sinfo", "-N", "-h", "-O", SINFO_FORMAT])
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise TmuxtrainError(f"sinfo: {why}")
    return partitions(parse_sinfo(r.stdout))


def _ok(r: StartRequest, slurm_id: str) -> Started:
    return Started(r.job.id, r.job.attempt, Handle(external_id=slurm_id))


def _failed(r: StartRequest, why: str) -> Started:
    return Started(r.job.id, r.job.attempt, None, why)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.+-" else "_" for c in name)[:100] or "job"


def _minutes(seconds: float) -> str:
    """Slurm's --time in whole minutes (rounded up): `D-HH:MM:00`."""
    minutes = -(-int(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"
