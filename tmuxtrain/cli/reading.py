"""Commands that read and follow jobs and the scheduler: metrics, logs, waiting, GPUs,
events, the scheduler itself, Slurm export, the dashboard and the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from tmuxtrain.api import Client
from tmuxtrain.cli.output import CHUNK, fmt_mib, say, table
from tmuxtrain.cli.queue import submit_to_slurm
from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.units import printable


def cmd_doctor(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain.doctor import exit_status

    checks = c.doctor()
    if a.json:
        print(json.dumps([vars(x) for x in checks]))
        return exit_status(checks)
    for x in checks:
        print(f"{'ok ' if x.ok else 'BAD'} {x.name}: {x.detail}")
        if x.fix:
            print(f"    to fix: {x.fix}")
    return exit_status(checks)


def cmd_metrics(c: Client, a: argparse.Namespace) -> int:
    hist = c.metrics(a.id)
    if a.json:
        print(json.dumps(hist))
        return 0
    rows = []
    for name, points in hist.items():
        last = points[-1]
        rows.append(
            [name, str(len(points)), f"{last[2]:.6g}", "" if last[1] is None else f"{last[1]:g}"]
        )
    print(table(rows, ["metric", "points", "last", "at step"]))
    return 0


def cmd_log(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain import logfile

    if a.scheduler == (a.id is not None):
        raise TmuxtrainError("give a job id, or --scheduler for the scheduler's own log")
    if a.scheduler:
        return scheduler_log(c, a)
    job = c.job(a.id)
    path = job.log_path
    out = sys.stdout.buffer
    pos = logfile.size(path)
    if a.lines is not None:
        out.write(logfile.tail_lines(path, a.lines))
    else:
        for start in range(0, pos, CHUNK):  # a log can be gigabytes: never all in memory
            out.write(logfile.read(path, start, min(pos, start + CHUNK)))
    out.flush()
    while a.follow:
        chunk = logfile.read(path, pos, pos + CHUNK)
        if chunk:
            pos += len(chunk)
            out.write(chunk)
            out.flush()
        elif c.job(job.id).state.finished:
            break
        else:
            time.sleep(0.1)
    return 0


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def scheduler_log(c: Client, a: argparse.Namespace) -> int:
    """`log --scheduler`: TMUXTRAIN_HOME/scheduler.log (older parts, rotated by the
    scheduler, are scheduler.log.1 to .3); `-f` follows it across rotations until Ctrl-C."""
    from tmuxtrain import logfile

    path = c.settings.scheduler_log
    if not os.path.exists(path) and not a.follow:
        raise TmuxtrainError(f"no scheduler log at {path}: no scheduler has run in this home")
    out = sys.stdout.buffer
    inode, pos = _inode(path), logfile.size(path)
    if a.lines is not None:
        out.write(logfile.tail_lines(path, a.lines))
    else:
        for start in range(0, pos, CHUNK):
            out.write(logfile.read(path, start, min(pos, start + CHUNK)))
    out.flush()
    while a.follow:
        now = _inode(path)
        if now != inode or logfile.size(path) < pos:  # rotated: the new file from its start
            inode, pos = now, 0
        chunk = logfile.read(path, pos, pos + CHUNK)
        if chunk:
            pos += len(chunk)
            out.write(chunk)
            out.flush()
        else:
            time.sleep(0.2)
    return 0


def cmd_attach(c: Client, a: argparse.Namespace) -> int:
    argv = c.attach_argv(a.id)
    if not sys.stdin.isatty() and "switch-client" not in argv:
        raise TmuxtrainError("attach needs a terminal")
    os.execvp(argv[0], argv)
    return 0  # pragma: no cover - exec does not return


def cmd_wait(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain.core.units import parse_duration_s

    try:
        timeout = None if a.timeout is None else parse_duration_s(a.timeout)
    except ValueError as e:
        raise TmuxtrainError(f"--timeout: {e}") from None
    ids = c.waited_ids(a.ids or None)
    if sys.stderr.isatty():
        shown = ", ".join(map(str, ids[:10])) + (
            f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        )
        print(
            f"waiting for {len(ids)} job{'s' if len(ids) != 1 else ''}: {shown or '-'}",
            file=sys.stderr,
        )
    try:
        jobs = c.wait_for(ids, timeout)
    except TimeoutError as e:
        print(f"tmuxtrain wait: {e}", file=sys.stderr)
        return 124
    bad = [j for j in jobs if j.state.value in ("failed", "cancelled")]
    for j in bad:
        why = j.reason or (f"exit code {j.exit_code}" if j.exit_code is not None else "")
        print(f"job {j.id} ({printable(j.name, 60)}) {j.state.value}: {why}", file=sys.stderr)
    return 1 if bad else 0


def cmd_gpus(c: Client, a: argparse.Namespace) -> int:
    gpus = c.gpus()
    if a.json:
        print(json.dumps(gpus))
        return 0
    cluster = c.cluster()
    if cluster is not None:
        print_cluster(cluster)
        if not gpus:
            return 0
        print()
    if not gpus:
        print(c.gpu_source_note() or "no GPUs")
        return 0
    rows = []
    for g in gpus:
        total, used = g["memory_total_mib"], g["memory_used_mib"]
        free = None if total is None or used is None else total - used
        rows.append(
            [
                str(g["index"]),
                g["name"] + (" (simulated)" if g["simulated"] else ""),
                f"{fmt_mib(used)} / {fmt_mib(total)}",
                fmt_mib(free),
                "?" if g["utilization_pct"] is None else f"{g['utilization_pct']}%",
                "?" if g["temperature_c"] is None else f"{g['temperature_c']}C",
                ",".join(map(str, g["jobs"])) or "-",
            ]
        )
    print(table(rows, ["gpu", "name", "memory used", "free", "util", "temp", "jobs"]))
    return 0


def print_cluster(cluster: dict[str, Any]) -> None:
    """The Slurm cluster's partitions, as `sinfo` sees them."""
    if cluster["error"]:
        print(f"Slurm cluster: {cluster['error']}")
        return
    rows = [
        [
            p["name"] + (" (default)" if p["default"] else ""),
            f"{p['nodes_usable']}/{p['nodes']}",
            str(p["gpus"]),
            str(p["gpus_free"]),
        ]
        for p in cluster["partitions"]
    ]
    print(table(rows, ["partition", "nodes up", "gpus", "free"]) if rows else "no partitions")


def cmd_events(c: Client, a: argparse.Namespace) -> int:
    try:
        events = c.events(a.since, follow=a.follow, job=a.job, kinds=a.kind or ())
        for ev in events:
            print(json.dumps(ev), flush=True)
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C on --follow, or `| head`: done
        pass
    return 0


def cmd_up(c: Client, a: argparse.Namespace) -> int:
    started = c.up()
    st = c.status()
    print(f"scheduler {'started' if started else 'already running'} (pid {st['scheduler']['pid']})")
    say(f"its log: {st['scheduler']['log']} (tmuxtrain log --scheduler)")
    return 0


def cmd_down(c: Client, a: argparse.Namespace) -> int:
    stopped = c.down()
    print(
        "scheduler stopped; running jobs keep running" if stopped else "scheduler was not running"
    )
    return 0


def cmd_status(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain import logfile

    st = c.status(full=True)
    if a.json:
        print(json.dumps(st))
        return 0
    sch = st["scheduler"]
    if sch["running"]:
        print(f"scheduler: running (pid {sch['pid']})")
    else:
        print("scheduler: down; `tmuxtrain up` starts it (`add` does too)")
    print("jobs:      " + "  ".join(f"{k} {v}" for k, v in st["counts"].items()))
    print(f"home:      {st['home']}")
    print(f"log:       {sch['log']} (tmuxtrain log --scheduler)")
    cluster = st["cluster"]
    if cluster is not None:
        parts = [
            f"{p['name']} {p['gpus_free']}/{p['gpus']} GPUs free" for p in cluster["partitions"]
        ]
        print("slurm:     " + (cluster["error"] or ", ".join(parts) or "no partitions"))
    last = logfile.tail_lines(sch["log"], 1).decode(errors="replace").strip()
    if not sch["running"] and last:
        print(f"last line: {printable(last, 200)}")
    if len(st["projects"]) > 1:  # one project: nothing to share
        from tmuxtrain.cli.fairshare import fair_share_table

        print(fair_share_table(st["projects"]))
    return 0


def cmd_sbatch(c: Client, a: argparse.Namespace) -> int:
    return submit_to_slurm(
        c, a.files, None, out=a.out, submit=a.submit,
        partition=a.partition, account=a.account, extra=tuple(a.command),
    )  # fmt: skip


def cmd_ui(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain.ui.app import run_ui

    return run_ui(c)


def cmd_demo(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain.demo import run_demo

    return run_demo(c, open_ui=not a.no_ui)
