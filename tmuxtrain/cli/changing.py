"""Commands that change queued and running jobs: cancel, retry, hold, release, priority,
edit. On a terminal each says what it did; a script gets the exit status, and for `retry`
the id as before."""

from __future__ import annotations

import argparse
import json

from tmuxtrain.api import Client
from tmuxtrain.cli.output import env_pairs, note, on_terminal, say
from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.units import printable


def _named(c: Client, job_id: int) -> str:
    """`job 7 (resnet-lr0.1)`, for confirmations."""
    return f"job {job_id} ({printable(c.job(job_id).name, 40)})"


def cmd_cancel(c: Client, a: argparse.Namespace) -> int:
    for job_id, what in c.cancel_jobs(a.ids):
        if what == "dropped":
            say(f"{_named(c, job_id)} cancelled; it had not started")
        elif what == "stopping":
            say(f"{_named(c, job_id)} stopping: Ctrl-C now, then SIGTERM and SIGKILL")
        else:  # already finished: cleaning up twice is not an error
            note("cancel", f"job {job_id} already {what}; nothing to cancel")
    return 0


def cmd_retry(c: Client, a: argparse.Namespace) -> int:
    job_id = c.retry(a.id)
    if on_terminal():
        print(f"{_named(c, job_id)} queued again as attempt {c.job(job_id).attempt}")
    else:
        print(job_id)
    return 0


def _hold(c: Client, a: argparse.Namespace, held: bool) -> int:
    for job_id, changed in c.hold_jobs(a.ids, held):
        if changed:
            say(f"{_named(c, job_id)} {'held' if held else 'released'}")
        else:
            note(a.cmd, f"job {job_id} {'already held' if held else 'was not held'}")
    return 0


def cmd_hold(c: Client, a: argparse.Namespace) -> int:
    return _hold(c, a, True)


def cmd_release(c: Client, a: argparse.Namespace) -> int:
    return _hold(c, a, False)


def cmd_priority(c: Client, a: argparse.Namespace) -> int:
    job_id = c.job(a.id).id
    changes = c.edit(job_id, priority=a.priority)
    if "priority" in changes:
        old, new = changes["priority"]
        say(f"{_named(c, job_id)} priority {old} -> {new}")
    else:
        say(f"{_named(c, job_id)} priority already {a.priority}")
    return 0


EDITS = ("command", "gpus", "vram", "priority", "timeout", "env", "name", "after")


def cmd_edit(c: Client, a: argparse.Namespace) -> int:
    if all(getattr(a, "command_text" if k == "command" else k) is None for k in EDITS):
        raise TmuxtrainError("nothing to change: give " + ", ".join(f"--{k}" for k in EDITS))
    after = None
    if a.after is not None:  # `--after 3,prep --after 5`; `--after none` clears them
        after = [r.strip() for item in a.after for r in item.split(",") if r.strip()]
        after = [r for r in after if r.lower() != "none"]
    job_id = c.job(a.id).id
    changes = c.edit(
        job_id,
        command=a.command_text, gpus=a.gpus, vram=a.vram, priority=a.priority,
        timeout=a.timeout, env=env_pairs(a.env) if a.env else None, name=a.name, after=after,
    )  # fmt: skip
    if a.json:
        print(json.dumps(changes))
    elif not changes:
        say(f"{_named(c, job_id)} unchanged: it already is so")
    else:
        shown = ", ".join(
            f"{k} {printable(str(old), 60)} -> {printable(str(new), 60)}"
            for k, (old, new) in changes.items()
        )
        say(f"{_named(c, job_id)} edited: {shown}")
    return 0


def id_ranges(ids: list[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> `1-3, 5, 7-8`."""
    out: list[str] = []
    for i in sorted(ids):
        if out and "-" not in out[-1] and int(out[-1]) == i - 1:
            out[-1] = f"{out[-1]}-{i}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == i - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


def cmd_clean(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain.core.units import parse_duration_s

    older_than = None
    if a.older_than is not None:
        try:
            older_than = parse_duration_s(a.older_than)
        except ValueError as e:
            raise TmuxtrainError(f"--older-than: {e}") from None
    done = c.clean(a.ids or None, a.state, older_than)
    if a.json:
        print(json.dumps(done))
    elif done["removed"]:
        n = len(done["removed"])
        say(f"removed {n} finished job{'s' if n != 1 else ''}: {id_ranges(done['removed'])}")
    else:
        say("nothing to clean")
    for job_id, waiting in done["kept"].items():
        who = ", ".join(map(str, waiting))
        waits = f"jobs {who} wait" if len(waiting) > 1 else f"job {who} waits"
        note("clean", f"kept job {job_id}: {waits} for it")
    for job_id in done["gone"]:
        note("clean", f"job {job_id} was already cleaned")
    return 0
