"""What is queued (`ls`, `show`) and queueing jobs (`add`, and `sbatch` for Slurm)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from tmuxtrain.api import Client
from tmuxtrain.cli.output import (
    STATE_COLOURS,
    colours_on,
    env_pairs,
    fmt_dur,
    fmt_mib,
    note,
    queue_table,
    terminal_width,
)
from tmuxtrain.core.errors import NotStarted, TmuxtrainError
from tmuxtrain.core.units import format_metric, format_progress, printable


def cmd_ls(c: Client, a: argparse.Namespace) -> int:
    if a.json:
        print(c.list_json(a.state))
        return 0
    jobs = c.list(a.state)
    rows = []
    for j in jobs:
        gpus = (
            ",".join(map(str, j["gpus"]))
            if j["gpus"]
            else (f"({j['gpus_requested']})" if j["gpus_requested"] else "-")
        )
        loss = j["metrics"].get("loss")
        rows.append(
            [
                str(j["id"]),
                printable(j["name"]),
                j["state"] + (f" #{j['attempt']}" if j["attempt"] > 1 else ""),
                gpus,
                format_progress(j["metrics"]),
                format_metric(loss),
                fmt_dur(j["runtime_s"]),
                printable(
                    j["reason"] or ("" if j["exit_code"] in (None, 0) else f"exit {j['exit_code']}")
                ),
            ]
        )
    headers = ["id", "name", "state", "gpus", "progress", "loss", "runtime", "reason"]
    # On a terminal the table fits its width: long names give way first (cut with `…`),
    # then long reasons, then both further; a pipe gets every character.
    print(
        queue_table(
            rows,
            headers,
            width=terminal_width(),
            shrink=[(1, 24), (7, 30), (1, 16), (7, 24), (1, 10), (7, 10)],
            colour={2: STATE_COLOURS} if colours_on() else None,
        )
    )
    if any(j["state"] in ("pending", "running") for j in jobs) and not c.scheduler_running():
        note(
            "ls",
            "the scheduler is down: pending jobs do not start and these states are not"
            " updated; `tmuxtrain up` starts it (its log: `tmuxtrain log --scheduler`)",
        )
    return 0


def cmd_show(c: Client, a: argparse.Namespace) -> int:
    j = c.show(a.id)
    if a.json:
        print(json.dumps(j))
        return 0
    keys = [
        "id",
        "name",
        "state",
        "command",
        "cwd",
        "gpus_requested",
        "vram_mib",
        "gpus",
        "priority",
        "project",
        "after",
        "held",
        "attempt",
        "max_retries",
        *(["restarts"] if j["preemptible"] else []),
        "exit_code",
        "reason",
        "log_path",
        "tmux_window",
        "submitted_at",
        "started_at",
        "finished_at",
        "runtime_s",
    ]
    width = max(map(len, keys))
    for k in keys:
        v = j[k]
        if k == "vram_mib":
            v = _vram(j)
        print(f"{k.ljust(width)}  {printable(str(v), 200) if v not in (None, '') else '-'}")
    if j["env"]:
        print("env".ljust(width), " ".join(f"{k}={printable(v, 40)}" for k, v in j["env"].items()))
    if j["metrics"]:
        print(
            "metrics".ljust(width),
            " ".join(f"{k}={format_metric(v)}" for k, v in j["metrics"].items()),
        )
    for ck in j["checkpoints"]:
        scores = " ".join(f"{k}={format_metric(v)}" for k, v in ck["metrics"].items())
        mark = " (best)" if ck["best"] else ""
        state = f"eval job {ck['eval_job_id']} {ck['eval_state']}"
        version = f" (version {ck['version']})" if ck.get("version", 1) > 1 else ""
        print(f"checkpoint {ck['path']}{version}: {state} {scores}{mark}")
    for at in j["attempts"]:
        print(f"attempt {at['attempt']}: exit {at['exit_code']} gpus {at['gpus']} {at['reason']}")
    return 0


def cmd_add(c: Client, a: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    for key in ("gpus", "vram", "name", "priority", "project", "retries", "cwd", "timeout"):
        v = getattr(a, key)
        if v is not None:
            overrides[key] = v
    if a.after:
        overrides["after"] = a.after
    if a.env:
        overrides["env"] = env_pairs(a.env)
    if a.clean_env:
        overrides["inherit_env"] = False
    if a.hold:
        overrides["hold"] = True
    if a.command and a.files:
        raise TmuxtrainError("give job files or a command after --, not both")
    try:
        ids = _add(c, a, overrides)
    except NotStarted as e:  # queued all the same: say which, so nobody adds them twice
        print(json.dumps(e.ids) if a.json else "\n".join(map(str, e.ids)))
        raise
    if a.json:
        print(json.dumps(ids))
    else:
        print("\n".join(map(str, ids)))
    return 0


def _add(c: Client, a: argparse.Namespace, overrides: dict[str, Any]) -> list[int]:
    if a.command:
        return c.add_command(a.command, overrides, start=not a.no_start, force=a.force)
    elif a.files:
        if "cwd" in overrides:
            overrides["cwd"] = os.path.abspath(overrides["cwd"])
        return c.add_files(a.files, overrides, start=not a.no_start, force=a.force)
    raise TmuxtrainError("nothing to add: give job files, or -- and a command")


def submit_to_slurm(
    c: Client,
    files: Sequence[str],
    overrides: dict[str, Any] | None,
    *,
    out: str,
    submit: bool = True,
    **opts: Any,
) -> int:
    """Write the files' jobs as sbatch scripts under `out`, and submit them in order."""
    for line in c.export_sbatch(files, overrides, out=out, submit=submit, **opts):
        print(line)
    return 0


def _vram(j: dict[str, Any]) -> str:
    """What the current attempt asks for per GPU, and where that came from when it is not
    the job file (`9 GiB (raised after CUDA out of memory; declared 4 GiB, peak 6 GiB)`)."""
    ask = "exclusive" if j["vram_mib"] is None else fmt_mib(j["vram_mib"])
    if j["vram_source"] == "declared":
        return ask
    peak = f", peak {fmt_mib(j['vram_peak_mib'])}" if j.get("vram_peak_mib") else ""
    if j["vram_source"] == "learned":  # from its sweep's measured siblings
        return f"{ask} (learned){peak}"
    declared = "exclusive" if j["vram_declared_mib"] is None else fmt_mib(j["vram_declared_mib"])
    return f"{ask} (raised after CUDA out of memory; declared {declared}{peak})"
