"""The argument parser: every command, option and positional, with its help."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from tmuxtrain.api.reading import EVENT_KINDS
from tmuxtrain.cli.changing import (
    cmd_cancel,
    cmd_clean,
    cmd_edit,
    cmd_hold,
    cmd_priority,
    cmd_release,
    cmd_retry,
)
from tmuxtrain.cli.completion import SHELLS, cmd_complete, cmd_completion
from tmuxtrain.cli.output import literal
from tmuxtrain.cli.queue import cmd_add, cmd_ls, cmd_show
from tmuxtrain.cli.reading import (
    cmd_attach,
    cmd_demo,
    cmd_doctor,
    cmd_down,
    cmd_events,
    cmd_gpus,
    cmd_log,
    cmd_metrics,
    cmd_sbatch,
    cmd_status,
    cmd_ui,
    cmd_up,
    cmd_wait,
)

INT64_MAX = 2**63 - 1


def int64(text: str) -> int:
    """An integer SQLite can hold (ids, counts, priorities): larger ones are bad input, not
    an OverflowError further down."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not -INT64_MAX <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"out of range: {text}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong, and where the help is (its usage,
    wrapped over several lines, would bury the one line that matters)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {literal(message)} (see {self.prog} --help)\n")


class Version(argparse.Action):
    """`--version`: looked up only when asked (importlib.metadata is slow to import)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"tmuxtrain {version('tmuxtrain')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("tmuxtrain (version unknown: not installed)")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="tmuxtrain",
        description="Queue training runs into tmux windows on the GPUs that are free.",
    )
    p.add_argument("--version", action=Version, help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def add(name: str, fn: Any, help: str, json_flag: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print JSON")
        return sp

    add("up", cmd_up, "start the scheduler (detached; its log: `tmuxtrain log --scheduler`)")
    add("down", cmd_down, "stop the scheduler; running jobs keep running")
    add("status", cmd_status, "the scheduler's state and job counts", json_flag=True)
    add(
        "doctor",
        cmd_doctor,
        "check the state folder, the database (read-only), tmux, the GPUs and the scheduler,"
        " and say how to recover",
        json_flag=True,
    )

    sp = add("add", cmd_add, "queue jobs from job files, or one command after --", json_flag=True)
    sp.add_argument("files", nargs="*", metavar="FILE", help="job files (YAML)")
    sp.add_argument("--gpus", type=int64, help="GPUs per job (0 = CPU only)")
    sp.add_argument(
        "--vram", help="free GPU memory needed per GPU, e.g. 20GiB (default: whole GPUs)"
    )
    sp.add_argument("--name", help="job name (window name is ID-NAME)")
    sp.add_argument("--priority", type=int64, help="higher runs first")
    sp.add_argument("--project", help="fair-share group")
    sp.add_argument(
        "--after",
        action="append",
        metavar="ID",
        help="run after this job succeeds (repeatable); ID.evals: and its checkpoint "
        "evaluations end",
    )
    sp.add_argument("--retries", type=int64, help="extra attempts after a failure")
    sp.add_argument("--timeout", help="stop the job after this long, e.g. 12h")
    sp.add_argument(
        "--cwd",
        metavar="DIR",
        help="folder to run in (default: the job file's, or the current one)",
    )
    sp.add_argument(
        "--env", action="append", metavar="K=V", help="set an environment variable (repeatable)"
    )
    sp.add_argument(
        "--clean-env", action="store_true", help="a minimal environment instead of yours"
    )
    sp.add_argument(
        "--hold", action="store_true", help="queue the jobs held: they start after `release`"
    )
    sp.add_argument("--no-start", action="store_true", help="do not start the scheduler")
    sp.add_argument(
        "--force", action="store_true", help="queue a job this machine can never run, anyway"
    )

    sp = add("ls", cmd_ls, "the queue", json_flag=True)
    sp.add_argument("--state", metavar="STATE", help="only these states (comma-separated)")
    sp = add("show", cmd_show, "one job, whole", json_flag=True)
    sp.add_argument("id", metavar="ID", help="job id or unique name")
    sp = add(
        "cancel",
        cmd_cancel,
        "cancel jobs (running ones: Ctrl-C, then SIGTERM, then SIGKILL); finished ones: a note",
    )
    sp.add_argument("ids", nargs="+", metavar="ID", help="job ids or names")
    sp = add("retry", cmd_retry, "queue a finished job again (also a succeeded one: a rerun)")
    sp.add_argument("id", metavar="ID", help="a finished job's id or name")
    sp = add("hold", cmd_hold, "keep pending jobs from starting")
    sp.add_argument("ids", nargs="+", metavar="ID", help="pending jobs' ids or names")
    sp = add("release", cmd_release, "let held jobs start")
    sp.add_argument("ids", nargs="+", metavar="ID", help="held jobs' ids or names")
    sp = add("priority", cmd_priority, "change a pending job's priority")
    sp.add_argument("id", metavar="ID", help="a pending job's id or name")
    sp.add_argument("priority", type=int64, metavar="P", help="the new priority; higher runs first")
    sp = add(
        "edit",
        cmd_edit,
        "change a pending or held job (it keeps its id); the command may also follow --",
        json_flag=True,
    )
    sp.add_argument("id", metavar="ID", help="a pending or held job's id or name")
    sp.add_argument("--command", dest="command_text", help="the new command (a shell line)")
    sp.add_argument("--gpus", type=int64, help="GPUs (0 = CPU only, which drops --vram)")
    sp.add_argument("--vram", help="free GPU memory per GPU, e.g. 20GiB; 'exclusive': whole GPUs")
    sp.add_argument("--priority", type=int64, help="higher runs first")
    sp.add_argument("--timeout", help="stop the job after this long, e.g. 12h; 'none': never")
    sp.add_argument(
        "--env", action="append", metavar="K=V", help="set an environment variable (repeatable)"
    )
    sp.add_argument("--name", help="the new name (jobs that run after it keep following it)")
    sp.add_argument(
        "--after",
        action="append",
        metavar="IDS",
        help="run after these jobs succeed instead (ids or names, comma-separated; "
        "NAME.evals: and its checkpoint evaluations end); 'none'",
    )
    sp = add(
        "clean",
        cmd_clean,
        "remove finished jobs with their logs, metric history and events (all finished jobs,"
        " or these); jobs a waiting job depends on stay, and ids are never reused",
        json_flag=True,
    )
    sp.add_argument(
        "ids", nargs="*", metavar="ID", help="finished jobs' ids or names (default: all)"
    )
    sp.add_argument(
        "--state", metavar="STATE", help="only these finished states, e.g. failed,cancelled"
    )
    sp.add_argument(
        "--older-than", metavar="DURATION", help="only jobs that finished this long ago, e.g. 7d"
    )
    sp = add("metrics", cmd_metrics, "a job's metric history", json_flag=True)
    sp.add_argument("id", metavar="ID", help="job id or name")
    sp = add("log", cmd_log, "a job's raw output, or the scheduler's own log (--scheduler)")
    sp.add_argument("id", nargs="?", metavar="ID", help="job id or name (not with --scheduler)")
    sp.add_argument(
        "--scheduler",
        action="store_true",
        help="the scheduler's log: TMUXTRAIN_HOME/scheduler.log",
    )
    sp.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing until the job ends (the scheduler's log: until Ctrl-C)",
    )
    sp.add_argument("-n", "--lines", type=int64, help="only the last N lines")
    sp = add("attach", cmd_attach, "go to a job's tmux window")
    sp.add_argument("id", metavar="ID", help="job id or name")
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
    sp.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new events; without --since, only those from now on (as tail -f)",
    )
    sp.add_argument(
        "--since",
        type=int64,
        metavar="EVENT_ID",
        help="the events after this event id (0: from the first)",
    )
    sp.add_argument("--job", metavar="ID", help="only this job's events")
    sp.add_argument(
        "--kind",
        action="append",
        metavar="KIND",
        help="only events of these kinds (comma-separated, repeatable): " + ", ".join(EVENT_KINDS),
    )
    sp.add_argument("--json", action="store_true", help="(events are always JSON lines)")
    sp = add("sbatch", cmd_sbatch, "write job files as Slurm sbatch scripts, and submit them")
    sp.add_argument("files", nargs="+", metavar="FILE", help="job files (YAML)")
    sp.add_argument(
        "--out", metavar="DIR", default="sbatch", help="folder for the scripts (default: ./sbatch)"
    )
    sp.add_argument("--submit", action="store_true", help="run sbatch, in dependency order")
    sp.add_argument("--partition", help="Slurm partition (default: config slurm.partition)")
    sp.add_argument("--account", help="Slurm account (default: config slurm.account)")
    sp = add(
        "completion",
        cmd_completion,
        "print a shell completion script (commands, options, job ids and names, job files):"
        " source <(tmuxtrain completion bash)",
    )
    sp.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    # What the completion scripts call for job ids and names; not listed in the help.
    sp = sub.add_parser("_complete", description="jobs to offer for completion, one a line")
    sp.set_defaults(fn=cmd_complete)
    sp.add_argument("--shell", choices=SHELLS, default="bash", help="the script asking")
    sp.add_argument("for_command", metavar="COMMAND", help="offer the jobs it acts on")
    add("ui", cmd_ui, "the dashboard")
    sp = add("demo", cmd_demo, "start the scheduler, queue the example jobs, open the dashboard")
    sp.add_argument("--no-ui", action="store_true", help="only queue the jobs")
    return p
