"""`tmuxtrain` command line: argument parsing and printing only; the work is in `api.Client`.

Exit status: 0 success, 1 a job failed (`wait`), 2 bad usage or bad input. User mistakes
print one line on stderr, never a traceback. Nothing here imports Textual except `ui`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from tmuxtrain.api import Client
from tmuxtrain.core.errors import NotStarted, TmuxtrainError
from tmuxtrain.core.units import format_metric, format_progress, printable


def _fmt_mib(mib: int | None) -> str:
    from tmuxtrain.core.units import format_mib

    return "?" if mib is None else format_mib(mib)


def _fmt_dur(s: float | None) -> str:
    from tmuxtrain.core.units import format_duration

    return "" if s is None else format_duration(s)


CHUNK = 2**20


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


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
                printable(j["name"], 32),
                j["state"] + (f" #{j['attempt']}" if j["attempt"] > 1 else ""),
                gpus,
                format_progress(j["metrics"]),
                format_metric(loss),
                _fmt_dur(j["runtime_s"]),
                printable(
                    j["reason"]
                    or ("" if j["exit_code"] in (None, 0) else f"exit {j['exit_code']}"),
                    50,
                ),
            ]
        )
    print(table(rows, ["id", "name", "state", "gpus", "progress", "loss", "runtime", "reason"]))
    return 0


def cmd_show(c: Client, a: argparse.Namespace) -> int:
    j = c.show(a.id)
    if a.json:
        print(json.dumps(j))
        return 0
    keys = ["id", "name", "state", "command", "cwd", "gpus_requested", "vram_mib", "gpus",
            "priority", "project", "after", "held", "attempt", "max_retries", "exit_code",
            "reason", "log_path", "tmux_window", "submitted_at", "started_at", "finished_at",
            "runtime_s"]  # fmt: skip
    width = max(map(len, keys))
    for k in keys:
        v = j[k]
        if k == "vram_mib":
            v = "exclusive" if v is None else _fmt_mib(v)
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
        print(f"checkpoint {ck['path']}: {state} {scores}{mark}")
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
        env = {}
        for item in a.env:
            k, sep, v = item.partition("=")
            if not sep:
                raise TmuxtrainError(f"--env {item}: use KEY=VALUE")
            env[k] = v
        overrides["env"] = env
    if a.clean_env:
        overrides["inherit_env"] = False
    if a.command and a.files:
        raise TmuxtrainError("give job files or a command after --, not both")
    if a.files and c.config().runner == "slurm":
        return submit_to_slurm(c, a.files, overrides, out="sbatch")
    if a.hold:
        overrides["hold"] = True
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


def cmd_cancel(c: Client, a: argparse.Namespace) -> int:
    c.cancel(a.ids)
    return 0


def cmd_retry(c: Client, a: argparse.Namespace) -> int:
    print(c.retry(a.id))
    return 0


def cmd_hold(c: Client, a: argparse.Namespace) -> int:
    c.hold(a.ids, True)
    return 0


def cmd_release(c: Client, a: argparse.Namespace) -> int:
    c.hold(a.ids, False)
    return 0


def cmd_priority(c: Client, a: argparse.Namespace) -> int:
    c.set_priority(a.id, a.priority)
    return 0


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
                f"{_fmt_mib(used)} / {_fmt_mib(total)}",
                _fmt_mib(free),
                "?" if g["utilization_pct"] is None else f"{g['utilization_pct']}%",
                "?" if g["temperature_c"] is None else f"{g['temperature_c']}C",
                ",".join(map(str, g["jobs"])) or "-",
            ]
        )
    print(table(rows, ["gpu", "name", "memory used", "free", "util", "temp", "jobs"]))
    return 0


def cmd_events(c: Client, a: argparse.Namespace) -> int:
    try:
        for ev in c.events(a.since, follow=a.follow):
            print(json.dumps(ev), flush=True)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0


def cmd_up(c: Client, a: argparse.Namespace) -> int:
    started = c.up()
    st = c.status()
    print(f"scheduler {'started' if started else 'already running'} (pid {st['scheduler']['pid']})")
    return 0


def cmd_down(c: Client, a: argparse.Namespace) -> int:
    stopped = c.down()
    print(
        "scheduler stopped; running jobs keep running" if stopped else "scheduler was not running"
    )
    return 0


def cmd_status(c: Client, a: argparse.Namespace) -> int:
    st = c.status()
    if a.json:
        print(json.dumps(st))
        return 0
    sch = st["scheduler"]
    print(f"scheduler: {'running (pid ' + str(sch['pid']) + ')' if sch['running'] else 'down'}")
    print("jobs:      " + "  ".join(f"{k} {v}" for k, v in st["counts"].items()))
    print(f"home:      {st['home']}")
    if st["projects"]:
        from tmuxtrain.cli_fairshare import fair_share_table

        print(fair_share_table(st["projects"]))
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tmuxtrain",
        description="Queue training runs into tmux windows on the GPUs that are free.",
    )
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    def add(name: str, fn: Any, help: str, json_flag: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print JSON")
        return sp

    add("up", cmd_up, "start the scheduler (in the tmux window 'scheduler')")
    add("down", cmd_down, "stop the scheduler; running jobs keep running")
    add("status", cmd_status, "the scheduler's state and job counts", json_flag=True)

    sp = add("add", cmd_add, "queue jobs from job files, or one command after --", json_flag=True)
    sp.add_argument("files", nargs="*", metavar="FILE", help="job files (YAML)")
    sp.add_argument("--gpus", type=int, help="GPUs per job (0 = CPU only)")
    sp.add_argument(
        "--vram", help="free GPU memory needed per GPU, e.g. 20GiB (default: whole GPUs)"
    )
    sp.add_argument("--name", help="job name (window name is ID-NAME)")
    sp.add_argument("--priority", type=int, help="higher runs first")
    sp.add_argument("--project", help="fair-share group")
    sp.add_argument(
        "--after", action="append", metavar="ID", help="run after this job succeeds (repeatable)"
    )
    sp.add_argument("--retries", type=int, help="extra attempts after a failure")
    sp.add_argument("--timeout", help="stop the job after this long, e.g. 12h")
    sp.add_argument("--cwd", help="folder to run in (default: the job file's, or the current one)")
    sp.add_argument(
        "--env", action="append", metavar="K=V", help="set an environment variable (repeatable)"
    )
    sp.add_argument(
        "--clean-env", action="store_true", help="a minimal environment instead of yours"
    )
    sp.add_argument("--no-start", action="store_true", help="do not start the scheduler")
    sp.add_argument("--hold", action="store_true", help="queue held (tmuxtrain release starts it)")
    sp.add_argument(
        "--force", action="store_true", help="queue a job this machine can never run, anyway"
    )

    sp = add("ls", cmd_ls, "the queue", json_flag=True)
    sp.add_argument("--state", help="only these states (comma-separated)")
    sp = add("show", cmd_show, "one job, whole", json_flag=True)
    sp.add_argument("id", help="job id or unique name")
    sp = add("cancel", cmd_cancel, "cancel jobs (running ones: Ctrl-C, then SIGTERM, then SIGKILL)")
    sp.add_argument("ids", nargs="+", metavar="ID")
    sp = add("retry", cmd_retry, "queue a failed or cancelled job again")
    sp.add_argument("id")
    sp = add("hold", cmd_hold, "keep pending jobs from starting")
    sp.add_argument("ids", nargs="+", metavar="ID")
    sp = add("release", cmd_release, "let held jobs start")
    sp.add_argument("ids", nargs="+", metavar="ID")
    sp = add("priority", cmd_priority, "change a pending job's priority")
    sp.add_argument("id")
    sp.add_argument("priority", type=int)
    sp = add("metrics", cmd_metrics, "a job's metric history", json_flag=True)
    sp.add_argument("id")
    sp = add("log", cmd_log, "a job's raw output")
    sp.add_argument("id")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    sp.add_argument("-n", "--lines", type=int, help="only the last N lines")
    sp = add("attach", cmd_attach, "go to a job's tmux window")
    sp.add_argument("id")
    sp = add(
        "wait",
        cmd_wait,
        "wait for jobs to end (default: those pending or running now); exit 1 if any failed "
        "or was cancelled, 124 on timeout",
    )
    sp.add_argument("ids", nargs="*", metavar="ID", help="job ids or names")
    sp.add_argument("--timeout", metavar="DURATION", help="give up after this long, e.g. 90s, 2h")
    add("gpus", cmd_gpus, "GPUs: memory, utilisation, temperature, jobs", json_flag=True)
    sp = add("events", cmd_events, "job events as JSON lines")
    sp.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    sp.add_argument(
        "--since", type=int, default=0, metavar="EVENT_ID", help="resume after this event id"
    )
    sp.add_argument("--json", action="store_true", help="(events are always JSON lines)")
    sp = add("sbatch", cmd_sbatch, "write job files as Slurm sbatch scripts, and submit them")
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.add_argument("--out", default="sbatch", help="folder for the scripts (default: ./sbatch)")
    sp.add_argument("--submit", action="store_true", help="run sbatch, in dependency order")
    sp.add_argument("--partition", help="Slurm partition (default: config slurm.partition)")
    sp.add_argument("--account", help="Slurm account (default: config slurm.account)")
    add("ui", cmd_ui, "the dashboard")
    sp = add("demo", cmd_demo, "start the scheduler, queue the example jobs, open the dashboard")
    sp.add_argument("--no-ui", action="store_true", help="only queue the jobs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # `add [opts] -- CMD...`: everything after -- is the job's command
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1 :]
    args = parser.parse_args(argv)
    if command and args.cmd not in ("add", "sbatch"):
        parser.error("a command after -- only goes with `add` (or extra flags with `sbatch`)")
    args.command = command
    client = Client()
    try:
        return int(args.fn(client, args))
    except TmuxtrainError as e:
        print(f"tmuxtrain {args.cmd}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C: quietly, with the shell's status for SIGINT
        return 130
    except BrokenPipeError:  # `tmuxtrain ls | head`: the reader has all it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as e:  # e.g. a bad TMUXTRAIN_GPUS, an unreadable folder
        print(f"tmuxtrain {args.cmd}: {e}", file=sys.stderr)
        return 2
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
