"""`tmuxtrain` command line: argument parsing and printing only; the work is in `api.Client`.

Exit status: 0 success, 1 a job failed (`wait`), 2 bad usage or bad input, 3 queued but
the scheduler did not start, 4-10 the database or its disk failed (`store/faults.py`).
User mistakes and storage failures print one line on stderr, never a traceback. Nothing
here imports Textual except `ui`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Sequence

from tmuxtrain.api import Client
from tmuxtrain.cli.output import literal
from tmuxtrain.cli.parser import build_parser
from tmuxtrain.core.errors import TmuxtrainError

__all__ = ["build_parser", "main"]


def say_error(cmd: str, e: BaseException) -> None:
    """One line on stderr, whatever the message quotes."""
    print(f"tmuxtrain {cmd}: {literal(str(e))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # `add [opts] -- CMD...`: everything after -- is the job's command
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1 :]
    args = parser.parse_args(argv)
    if args.cmd is None:  # `tmuxtrain` alone: what it can do
        parser.print_help()
        return 0
    if command and args.cmd not in ("add", "edit", "sbatch"):
        parser.error("a command after -- only goes with `add` or `edit` (or flags with `sbatch`)")
    if command and args.cmd == "edit":
        if args.command_text is not None:
            parser.error("give the new command with --command or after --, not both")
        args.command_text = command[0] if len(command) == 1 else shlex.join(command)
    args.command = command
    client = Client()
    try:
        return int(args.fn(client, args))
    except TmuxtrainError as e:
        say_error(args.cmd, e)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C: quietly, with the shell's status for SIGINT
        return 130
    except BrokenPipeError:  # `tmuxtrain ls | head`: the reader has all it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        # The database or the disk under it failing (full, locked, damaged): one line with
        # its own exit status. Anything else that is not ours to explain stays a traceback.
        fault = client.fault(e)
        if fault is not None:
            say_error(args.cmd, fault)
            return fault.exit_code
        if isinstance(e, (ValueError, OSError)):  # a bad TMUXTRAIN_GPUS, an unreadable folder
            say_error(args.cmd, e)
            return 2
        raise
    finally:
        client.close()
