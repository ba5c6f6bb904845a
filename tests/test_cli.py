"""The command line as users and scripts meet it: help, JSON contract, exit codes, errors."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Env, kill_tmux_server, wait_until
from tmuxtrain.cli import build_parser

COMMANDS = [
    "up",
    "down",
    "status",
    "add",
    "ls",
    "show",
    "cancel",
    "retry",
    "hold",
    "release",
    "priority",
    "edit",
    "clean",
    "metrics",
    "log",
    "attach",
    "wait",
    "gpus",
    "events",
    "completion",
    "ui",
    "demo",
]

JOB_KEYS = {
    "id", "name", "state", "command", "cwd", "gpus_requested", "vram_mib", "gpus", "priority",
    "project", "after", "attempt", "max_retries", "exit_code", "log_path", "tmux_window",
    "submitted_at", "started_at", "finished_at", "metrics", "reason",
}  # fmt: skip
GPU_KEYS = {
    "index", "uuid", "name", "memory_total_mib", "memory_used_mib", "utilization_pct",
    "temperature_c", "jobs",
}  # fmt: skip


def test_every_contract_command_exists_and_has_help() -> None:
    parser = build_parser()
    sub = next(
        a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)
    )
    assert set(COMMANDS) <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.description, f"{name} has no help"
        assert p.format_help().startswith("usage: tmuxtrain " + name)


def test_help_runs_for_every_command(tt: Env) -> None:
    for name in COMMANDS:
        proc = tt.cli(name, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, name


def test_ls_imports_nothing_heavy_and_answers_fast(tt: Env) -> None:
    tt.cli("add", "--no-start", "--gpus", "0", "--", "true", check=True)
    code = (
        "import sys; from tmuxtrain.cli import main; main(['ls']);"
        "heavy = {'textual', 'libtmux', 'psutil', 'yaml', 'pynvml'};"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=tt.environ, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_ls_and_show_json_follow_the_contract(tt: Env) -> None:
    [a] = [
        int(x)
        for x in tt.cli(
            "add",
            "--no-start",
            "--vram",
            "10GiB",
            "--name",
            "one",
            "--priority",
            "3",
            "--",
            "python train.py",
            check=True,
        ).stdout.split()
    ]
    jobs = json.loads(tt.cli("ls", "--json", check=True).stdout)
    assert len(jobs) == 1 and set(jobs[0]) >= JOB_KEYS
    j = jobs[0]
    assert (j["id"], j["name"], j["state"], j["vram_mib"], j["priority"], j["gpus"]) == (
        a,
        "one",
        "pending",
        10240,
        3,
        [],
    )
    assert j["command"] == "python train.py" and j["cwd"] == str(tt.root)
    shown = json.loads(tt.cli("show", "one", "--json", check=True).stdout)
    assert shown["id"] == a and shown["attempts"] == []
    assert json.loads(tt.cli("ls", "--json", "--state", "running", check=True).stdout) == []
    text = tt.cli("ls", check=True).stdout
    assert "one" in text and "pending" in text


def test_gpus_json(tt: Env) -> None:
    gpus = json.loads(tt.cli("gpus", "--json", check=True).stdout)
    assert [g["index"] for g in gpus] == [0, 1]
    assert all(set(g) >= GPU_KEYS for g in gpus)
    assert gpus[0]["memory_total_mib"] == 24 * 1024 and gpus[0]["jobs"] == []


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: a\ncommand: [unclosed\n", "x.yaml:2: invalid YAML"),
        (
            "name: a\ncommand: echo\nvrma: 10GiB\n",
            "x.yaml:3: vrma: unknown key 'vrma' (did you mean 'vram'?)",
        ),
        ("name: a\ncommand: echo\ngpus: two\n", "x.yaml:3: gpus: expected an integer"),
        ("name: a\ncommand: echo\nvram: 20 apples\n", "x.yaml:3: vram: bad size"),
        ("name: a\ncommand: echo\ntimeout: soon\n", "x.yaml:3: timeout:"),
        ("name: a-{lr}\ncommand: echo\n", "unknown placeholder {lr}"),
        (
            "jobs:\n  - {name: a, command: echo}\n  - {name: b, command: echo, after: [nope]}\n",
            "x.yaml:3: after: no job named 'nope'",
        ),
        (
            "jobs:\n  - {name: a, command: echo}\n  - {name: b}\n",
            "x.yaml:3: jobs[1].command: missing",
        ),
        ("", "x.yaml: empty job file"),
        ("- just\n- a list\n", "x.yaml:1: expected a mapping"),
        ("name: a\nname: b\ncommand: echo\n", "x.yaml:2: invalid YAML"),
    ],
)
def test_bad_job_files_exit_2_with_one_line_and_queue_nothing(
    tt: Env, text: str, needle: str
) -> None:
    tt.write("x.yaml", text)
    proc = tt.cli("add", "--no-start", "x.yaml")
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
    assert tt.client().list() == []


def test_other_bad_input(tt: Env) -> None:
    (tt.root / "bin.yaml").write_bytes(b"name: a\x00\xff")
    (tt.root / "latin.yaml").write_bytes(b"name: caf\xe9\ncommand: echo\n")
    cases = [
        (["add", "missing.yaml"], "missing.yaml: no such file"),
        (["add", "bin.yaml"], "bin.yaml: binary file"),
        (["add", "latin.yaml"], "latin.yaml:1: not UTF-8"),
        (["add", str(tt.root)], "is a folder"),
        (["add"], "nothing to add"),
        (["add", "--", " "], "command: is empty"),
        (["show", "99"], "no job 99"),
        (["show", "nobody"], "no job named 'nobody'"),
        (["ls", "--state", "bogus"], "unknown state 'bogus'"),
        (["cancel", "42"], "no job 42"),
        (["add", "--gpus", "0", "--vram", "1GiB", "--", "x"], "vram: set with gpus: 0"),
    ]
    for args, needle in cases:
        proc = tt.cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    bad_gpus = dict(tt.environ, TMUXTRAIN_GPUS="lots")
    proc = subprocess.run(
        [sys.executable, "-m", "tmuxtrain.cli", "gpus"],
        env=bad_gpus,
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 2 and "TMUXTRAIN_GPUS" in proc.stderr and "Traceback" not in proc.stderr
    )
    # A file with one bad job among good ones queues nothing, also with several files.
    tt.write("good.yaml", "name: g\ncommand: echo\n")
    tt.write("bad.yaml", "name: b\ncommand: echo\ngpus: -1\n")
    assert tt.cli("add", "--no-start", "good.yaml", "bad.yaml").returncode == 2
    assert tt.client().list() == []


def test_names_stand_for_ids_unless_ambiguous(tt: Env) -> None:
    tt.cli("add", "--no-start", "--name", "twin", "--", "true", check=True)
    tt.cli("add", "--no-start", "--name", "twin", "--", "true", check=True)
    tt.cli("add", "--no-start", "--name", "solo", "--", "true", check=True)
    assert json.loads(tt.cli("show", "solo", "--json", check=True).stdout)["id"] == 3
    proc = tt.cli("show", "twin")
    assert proc.returncode == 2 and "names 2 jobs (1, 2)" in proc.stderr


def test_hold_release_priority_and_state_errors(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    [a] = [int(x) for x in tt.cli("add", "--", "sleep 30", check=True).stdout.split()]
    [b] = [int(x) for x in tt.cli("add", "--", "true", check=True).stdout.split()]
    wait_until(lambda: tt.client().show(a)["state"] == "running")
    tt.cli("hold", str(b), check=True)
    assert tt.client().show(b)["held"] is True
    tt.cli("priority", str(b), "7", check=True)
    assert tt.client().show(b)["priority"] == 7
    assert tt.cli("priority", str(a), "1").returncode == 2  # running: not changeable
    assert tt.cli("retry", str(a)).returncode == 2  # running: nothing to retry
    tt.cli("cancel", str(a), check=True)
    wait_until(lambda: tt.client().show(a)["state"] == "cancelled")
    time.sleep(0.3)
    assert tt.client().show(b)["state"] == "pending"  # held: the free GPU stays unused
    assert "held" in tt.client().show(b)["reason"]
    tt.cli("release", str(b), check=True)
    wait_until(lambda: tt.client().show(b)["state"] == "succeeded")
    assert tt.cli("cancel", str(b)).returncode == 0  # already finished: a note, not an error


def open_files(pid: int) -> set[str]:
    """The files a process has open now (fds that close meanwhile are skipped)."""
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            out.add(os.readlink(fd))
    return out


def test_log_metrics_events_and_wait(tt: Env) -> None:
    cmd = 'for i in 1 2 3; do echo "epoch $i/3 loss 0.$((9 - i))"; sleep 0.2; done'
    [a] = [int(x) for x in tt.cli("add", "--gpus", "0", "--", cmd, check=True).stdout.split()]
    follow = tt.cli("log", str(a), "-f", timeout=30)  # returns when the job has ended
    assert follow.returncode == 0 and "epoch 3/3 loss 0.6" in follow.stdout
    assert tt.cli("wait", str(a), "--timeout", "20").returncode == 0
    last = tt.cli("log", str(a), "-n", "1", check=True).stdout
    assert len(last.splitlines()) == 1
    wait_until(lambda: tt.client().show(a)["metrics"].get("loss") == 0.6, what="latest loss")
    shown = tt.client().show(a)
    assert shown["metrics"]["epoch"] == 3 and shown["metrics"]["epochs"] == 3
    hist = json.loads(tt.cli("metrics", str(a), "--json", check=True).stdout)
    assert [p[2] for p in hist["loss"]][-1] == 0.6 and len(hist["loss"][0]) == 3
    events = [json.loads(x) for x in tt.cli("events", check=True).stdout.splitlines()]
    kinds = [e["kind"] for e in events if e["job_id"] == a]
    states = [k for k in kinds if k != "metric"]  # its final metrics follow its end
    assert states == ["submitted", "started", "succeeded"] and "metric" in kinds
    resumed = [
        json.loads(x)
        for x in tt.cli("events", "--since", str(events[1]["id"]), check=True).stdout.splitlines()
    ]
    assert resumed == events[2:]
    # b ends only once `wait` is looking (it holds the database open): on a loaded machine
    # `wait` could otherwise start after b ended, and rightly wait for nothing.
    go = tt.root / "go"
    [b] = [
        int(x)
        for x in tt.cli("add", "--gpus", "0", "--name", "will-fail", "--",
                        f'until [ -e "{go}" ]; do sleep 0.05; done; exit 3',
                        check=True).stdout.split()
    ]  # fmt: skip
    waiter = subprocess.Popen(
        [sys.executable, "-m", "tmuxtrain.cli", "wait", "--timeout", "30s"],
        env=tt.environ, cwd=tt.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    db = str(Path(tt.settings.db_path).resolve())
    wait_until(lambda: db in open_files(waiter.pid), what="wait to open the database")
    go.write_text("")
    _, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 1
    assert err.strip() == f"job {b} (will-fail) failed: exit code 3"
    assert tt.client().show(b)["exit_code"] == 3
    # Nothing pending or running any more: an old failure does not make every wait fail.
    assert tt.cli("wait").returncode == 0


def test_wait_timeout_exits_124_and_takes_durations(tt: Env) -> None:
    [a] = [
        int(x) for x in tt.cli("add", "--gpus", "0", "--", "sleep 30", check=True).stdout.split()
    ]
    proc = tt.cli("wait", "--timeout", "0.5s")
    assert proc.returncode == 124 and f"still unfinished: {a}" in proc.stderr
    assert tt.cli("wait", "--timeout", "soon").returncode == 2


def test_attach_from_outside_tmux_attaches_a_client(tt: Env) -> None:
    """Run `tmuxtrain attach` in a pane of a second, outer tmux server: it must attach a
    client to our server's job window (the terminal is real, so attach works)."""
    [a] = [
        int(x) for x in tt.cli("add", "--gpus", "0", "--", "sleep 30", check=True).stdout.split()
    ]
    wait_until(lambda: tt.client().show(a)["state"] == "running")
    outer = f"{tt.settings.socket}-outer"
    exe = Path(sys.executable).parent / "tmuxtrain"
    env_args = [f"{k}={v}" for k, v in tt.environ.items() if k.startswith("TMUXTRAIN_")]
    try:
        subprocess.run(
            [
                "tmux",
                "-L",
                outer,
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
                "env",
                *env_args,
                str(exe),
                "attach",
                str(a),
            ],
            check=True,
        )

        def terminal_clients() -> list[str]:  # not the scheduler's control-mode client
            out = tt.tmux("list-clients", "-F", "#{client_control_mode} #{window_id}")
            return [line.split()[1] for line in out.splitlines() if line.startswith("0 ")]

        windows = wait_until(terminal_clients, what="a client")
        assert windows == [tt.client().show(a)["tmux_window"]]
    finally:
        kill_tmux_server(outer)


def test_attach_inside_tmux_switches_client(tt: Env) -> None:
    [a] = [
        int(x) for x in tt.cli("add", "--gpus", "0", "--", "sleep 30", check=True).stdout.split()
    ]
    wait_until(lambda: tt.client().show(a)["state"] == "running")
    sock = tt.tmux("display-message", "-p", "-t", "=tmuxtrain:", "#{socket_path}").strip()
    tt.set("TMUX", f"{sock},123,0")
    argv = tt.client().attach_argv(a)
    assert "switch-client" in argv and tt.client().show(a)["tmux_window"] in argv


def test_demo_simulates_gpus_without_a_driver_and_gpus_follows_the_scheduler(tt: Env) -> None:
    """On this machine NVML cannot load: the demo says so, simulates 4 GPUs, queues the
    examples; a later `tmuxtrain gpus` without TMUXTRAIN_GPUS shows the scheduler's GPUs."""
    env = {k: v for k, v in tt.environ.items() if k != "TMUXTRAIN_GPUS"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tmuxtrain.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tt.root,
        )

    proc = run("demo", "--no-ui")
    assert proc.returncode == 0, proc.stderr
    assert "simulates 4 x 24 GiB GPUs" in proc.stdout
    names = {j["name"] for j in json.loads(run("ls", "--json").stdout)}
    assert {"mlp-baseline", "prep", "pretrain", "finetune", "mlp-lr0.1-s0"} <= names
    gpus = json.loads(run("gpus", "--json").stdout)
    assert len(gpus) == 4 and all(g["simulated"] for g in gpus)
    wait_until(
        lambda: any(j["state"] == "running" for j in json.loads(run("ls", "--json").stdout)),
        what="a demo job running",
    )
