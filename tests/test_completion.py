"""Shell completion as a shell runs it: the bash script's function called the way bash
calls it (COMP_WORDS, COMP_CWORD), fish's own `complete -C`, and zsh loading the script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Env

EXE = str(Path(sys.executable).parent / "tmuxtrain")


def bash_completions(tt: Env, *lines: str) -> dict[str, list[str]]:
    """What the completion function proposes for each command line (the last word, maybe
    empty, being completed), in a plain non-interactive bash."""
    calls = "\n".join(f"try {line}" for line in lines)
    script = f"""
source <({EXE} completion bash) || exit 9
complete -p tmuxtrain | grep -q -- '-F _tmuxtrain' || exit 8
try() {{
    COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=()
    _tmuxtrain tmuxtrain "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    printf '%s\\t' "${{COMPREPLY[@]}}"; echo
}}
{calls}
"""
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env=tt.environ,
        cwd=tt.root,
        timeout=60,
        check=True,
    )
    out = proc.stdout.splitlines()
    assert len(out) == len(lines), proc.stdout + proc.stderr
    return {line: [w for w in got.split("\t") if w] for line, got in zip(lines, out, strict=True)}


def test_bash_completes_commands_options_jobs_and_files(tt: Env) -> None:
    tt.cli("add", "--no-start", "--name", "train", "--", "true", check=True)
    tt.cli("add", "--no-start", "--name", "two words", "--", "true", check=True)
    tt.write("sweep.yaml", "name: s\ncommand: 'true'\n")
    tt.write("notes.txt", "")
    (tt.root / "jobs").mkdir()
    got = bash_completions(
        tt,
        f"{EXE} ca",
        f"{EXE} ''",
        f"{EXE} --v",
        f"{EXE} cancel ''",
        f"{EXE} cancel tr",
        f"{EXE} retry ''",
        f"{EXE} add ''",
        f"{EXE} add --cwd ''",
        f"{EXE} add --gpus ''",
        f"{EXE} add --ho",
        f"{EXE} ls --state ''",
        f"{EXE} priority 1 ''",
        f"{EXE} events --kind st",
        f"{EXE} completion ''",
    )
    assert got[f"{EXE} ca"] == ["cancel"]
    commands = got[f"{EXE} ''"]
    assert {"add", "edit", "clean", "completion", "ui"} <= set(commands)
    assert "_complete" not in commands  # the scripts' helper stays hidden
    assert got[f"{EXE} --v"] == ["--version"]
    assert got[f"{EXE} cancel ''"] == ["2", "1", "train"]  # a name with a space: ids only
    assert got[f"{EXE} cancel tr"] == ["train"]
    assert got[f"{EXE} retry ''"] == []  # nothing has finished: nothing to retry
    assert sorted(got[f"{EXE} add ''"]) == ["config.yaml", "home", "jobs", "sweep.yaml"]
    assert sorted(got[f"{EXE} add --cwd ''"]) == ["home", "jobs"]
    assert got[f"{EXE} add --gpus ''"] == []
    assert got[f"{EXE} add --ho"] == ["--hold"]
    assert got[f"{EXE} ls --state ''"] == [
        "pending", "running", "succeeded", "failed", "cancelled",
    ]  # fmt: skip
    assert got[f"{EXE} priority 1 ''"] == []  # the priority itself: a number
    assert got[f"{EXE} events --kind st"] == ["started"]
    assert got[f"{EXE} completion ''"] == ["bash", "zsh", "fish"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_through_its_own_engine(tt: Env) -> None:
    tt.cli("add", "--no-start", "--name", "train", "--", "true", check=True)
    env = dict(tt.environ, PATH=f"{Path(EXE).parent}:{tt.environ['PATH']}")
    script = (
        "tmuxtrain completion fish | source\n"
        'complete -C "tmuxtrain ca"; echo ---\n'
        'complete -C "tmuxtrain hold "; echo ---\n'
        'complete -C "tmuxtrain ls --state "\n'
    )
    proc = subprocess.run(
        ["fish", "--no-config", "-c", script],
        capture_output=True, text=True, env=env, cwd=tt.root, timeout=60, check=True,
    )  # fmt: skip
    commands, jobs, states = proc.stdout.split("---\n")
    assert commands.startswith("cancel\t")
    assert jobs.splitlines() == ["1\ttrain (pending)", "train\tjob 1 (pending)"]
    assert {line.split("\t")[0] for line in states.splitlines()} == {
        "pending", "running", "succeeded", "failed", "cancelled",
    }  # fmt: skip


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_parses_and_registers(tt: Env) -> None:
    text = tt.cli("completion", "zsh", check=True).stdout
    assert text.startswith("#compdef tmuxtrain\n")
    path = tt.write("_tmuxtrain", text)
    subprocess.run(["zsh", "-n", str(path)], check=True, timeout=60)
    proc = subprocess.run(
        ["zsh", "-f", "-c", f"autoload -Uz compinit && compinit -u -D; source {path};"
         " print -r -- $_comps[tmuxtrain]"],
        capture_output=True, text=True, env=tt.environ, timeout=60, check=True,
    )  # fmt: skip
    assert proc.stdout.strip() == "_tmuxtrain"
