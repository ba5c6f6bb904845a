"""The basics a command-line user expects: --version, help with no command, help for every
positional, and an `ls` that fits the terminal, in colour, while a pipe gets every
character in plain text."""

from __future__ import annotations

import argparse
import re
from importlib.metadata import version

from tests.conftest import Env, wait_until
from tests.terminal import on_terminal
from tmuxtrain.cli import build_parser

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG = "resnet50-imagenet-lr3e-4-warmup5-cosine-bs1024-mixup0.2-seed1234"


def test_version_and_no_command_print_what_they_should(tt: Env) -> None:
    proc = tt.cli("--version", check=True)
    assert proc.stdout.strip() == f"tmuxtrain {version('tmuxtrain')}"
    proc = tt.cli()
    assert proc.returncode == 0 and proc.stdout.startswith("usage: tmuxtrain")
    assert "clean" in proc.stdout and "completion" in proc.stdout and proc.stderr == ""


def test_every_positional_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {a.dest}"
        for name, p in sub.choices.items()
        for a in p._actions
        if not a.option_strings and not a.help
    ]
    assert missing == []
    shown = sub.choices["priority"].format_help()
    assert "a pending job's id or name" in shown and "higher runs first" in shown


def queue_with_a_long_name(tt: Env) -> tuple[int, int]:
    """A job holding both GPUs, and one with a long name that waits for a GPU."""
    [hog] = [
        int(x) for x in tt.cli("add", "--gpus", "2", "--", "sleep 60", check=True).stdout.split()
    ]
    [waiting] = [
        int(x) for x in tt.cli("add", "--name", LONG, "--", "true", check=True).stdout.split()
    ]
    wait_until(
        lambda: tt.client().show(waiting)["reason"].startswith("waiting for 1"),
        what="the long-named job's reason",
    )
    return hog, waiting


def test_ls_fits_the_terminal_in_colour_and_pipes_get_everything(tt: Env) -> None:
    _, waiting = queue_with_a_long_name(tt)
    reason = tt.client().show(waiting)["reason"]
    shown = on_terminal(tt.environ, "ls", cwd=tt.root, columns=80)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    plain = [ANSI.sub("", line) for line in lines]
    assert all(len(line) <= 80 for line in plain), plain
    row = next(line for line in plain if line.startswith(f"{waiting} "))
    assert "resnet50" in row and "…" in row and LONG not in row
    assert reason in row  # the long name gave way, the reason is whole
    assert "\x1b[36mrunning\x1b[0m" in shown.stdout  # the state in colour
    assert "\x1b[33mpending\x1b[0m" in shown.stdout
    wide = on_terminal(tt.environ, "ls", cwd=tt.root, columns=200)
    assert LONG in wide.stdout and reason in wide.stdout  # room enough: nothing is cut
    # NO_COLOR: no colour
    plain_env = dict(tt.environ, NO_COLOR="1")
    no_colour = on_terminal(plain_env, "ls", cwd=tt.root, columns=80)
    assert "\x1b[" not in no_colour.stdout
    # the same table, plain (the running job's runtime may have ticked meanwhile)
    assert row in no_colour.stdout.splitlines()
    # a pipe: every character, no colour, however narrow the terminal the user has
    piped = tt.cli("ls", check=True).stdout
    assert LONG in piped and reason in piped and "\x1b[" not in piped
