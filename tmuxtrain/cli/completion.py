"""Shell completion: scripts for bash, zsh and fish, made from the argument parser (so a
new command or option completes without touching this file), and the hidden
`tmuxtrain _complete` that the scripts call for job ids and names.

What a value completes to comes from its metavar: ID/IDS a job (only jobs the command can
act on: `retry` offers finished ones, `release` held ones), FILE a job file, DIR a folder,
STATE a job state, KIND an event kind; `choices` complete to themselves.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tmuxtrain.api import Client
from tmuxtrain.api.reading import EVENT_KINDS
from tmuxtrain.core.model import JobState

SHELLS = ("bash", "zsh", "fish")
STATES = tuple(s.value for s in JobState)
# Which jobs a command's ID argument is offered (None: every job).
JOBS_FOR = {
    "cancel": ("pending", "running"),
    "retry": ("succeeded", "failed", "cancelled"),
    "clean": ("succeeded", "failed", "cancelled"),
    "hold": ("pending",),
    "release": ("pending",),
    "priority": ("pending",),
    "edit": ("pending",),
    "attach": ("running", "succeeded", "failed", "cancelled"),
}
SAFE_NAME = re.compile(r"[A-Za-z0-9._+@%=,-]+")  # a name a shell may insert unquoted


@dataclass(frozen=True)
class Arg:
    """One option or positional, as completion sees it."""

    flags: tuple[str, ...]  # () for a positional
    help: str
    metavar: str  # what the value is called ('' for a flag without a value)
    kind: str  # jobs, files, dirs, '' (anything), or words separated by spaces
    many: bool  # repeatable option, or a positional taking several values
    optional: bool = False  # a positional that may be left out


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    args: tuple[Arg, ...]

    @property
    def options(self) -> list[Arg]:
        return [a for a in self.args if a.flags]

    @property
    def positionals(self) -> list[Arg]:
        return [a for a in self.args if not a.flags]


def _kind(action: argparse.Action) -> str:
    if action.choices:
        return " ".join(map(str, action.choices))
    meta = str(action.metavar or action.dest).upper()
    return {
        "ID": "jobs",
        "IDS": "jobs",
        "FILE": "files",
        "DIR": "dirs",
        "STATE": " ".join(STATES),
        "KIND": " ".join(EVENT_KINDS),
    }.get(meta, "")


def _arg(action: argparse.Action) -> Arg:
    takes_value = action.nargs != 0
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    return Arg(
        flags=tuple(action.option_strings),
        help=" ".join((action.help or "").split()),
        metavar=str(action.metavar or action.dest).upper() if takes_value else "",
        kind=_kind(action) if takes_value else "",
        many=many,
        optional=action.nargs in ("?", "*"),
    )


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every listed command with its options and positionals (hidden ones, `_...`, left
    out); the first is the program itself, named ''."""
    out = [Command("", parser.description or "", tuple(_top_args(parser)))]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sp in action.choices.items():
                if name.startswith("_"):
                    continue
                args = tuple(_arg(a) for a in sp._actions)
                out.append(Command(name, " ".join(helps.get(name, "").split()), args))
    return out


def _top_args(parser: argparse.ArgumentParser) -> Iterable[Arg]:
    for a in parser._actions:
        if a.option_strings:
            yield _arg(a)


def job_candidates(c: Client, command: str, shell: str) -> list[str]:
    """Jobs `command` can act on, newest first, as the shell's script wants them: bash
    one word a line (ids, then names a shell can take unquoted); zsh `value:description`;
    fish `value<TAB>description`."""
    states = JOBS_FOR.get(command)
    jobs = list(reversed(c.list_jobs([JobState(s) for s in states] if states else None)))
    if command == "release":
        jobs = [j for j in jobs if j.held]
    names: dict[str, int] = {}
    for j in jobs:
        names[j.name] = names.get(j.name, 0) + 1
    unique = [j for j in jobs if names[j.name] == 1 and SAFE_NAME.fullmatch(j.name)]
    if shell == "bash":
        return [str(j.id) for j in jobs] + [j.name for j in unique]
    sep = ":" if shell == "zsh" else "\t"

    def said(text: str) -> str:
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
        return text.replace(":", "\\:") if shell == "zsh" else text

    return [f"{j.id}{sep}{said(j.name)} ({j.state.value})" for j in jobs] + [
        f"{said(j.name)}{sep}job {j.id} ({j.state.value})" for j in unique
    ]


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    from tmuxtrain.cli import completion_scripts as scripts

    cmds = commands(parser)
    return {"bash": scripts.bash, "zsh": scripts.zsh, "fish": scripts.fish}[shell](cmds)


def cmd_completion(c: Client, a: argparse.Namespace) -> int:
    from tmuxtrain.cli.parser import build_parser

    print(script(a.shell, build_parser()), end="")
    return 0


def cmd_complete(c: Client, a: argparse.Namespace) -> int:
    """`tmuxtrain _complete [--shell S] COMMAND`: the jobs to offer (for the scripts)."""
    for line in job_candidates(c, a.for_command, a.shell):
        print(line)
    return 0
