"""End to end: real tmux server (private socket), real SQLite, real scheduler process, real
job processes; only the GPUs are simulated."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import Env, wait_until


def states(tt: Env) -> dict[int, str]:
    return {j["id"]: j["state"] for j in tt.client().list()}


def job(tt: Env, job_id: int) -> dict[str, Any]:
    return tt.client().show(job_id)


def wait_state(tt: Env, job_id: int, *want: str, timeout: float = 20) -> dict[str, Any]:
    """Wait for a state; a running job also for its window id, which is recorded a moment
    after the job is claimed."""

    def reached() -> dict[str, Any] | None:
        j = job(tt, job_id)
        ok = j["state"] in want and (j["state"] != "running" or j["tmux_window"])
        return j if ok else None

    found: dict[str, Any] = wait_until(reached, timeout, what=f"job {job_id} to be {want}")
    return found


def add(tt: Env, *args: str) -> list[int]:
    proc = tt.cli("add", *args, check=True)
    return [int(x) for x in proc.stdout.split()]


def run_together(tt: Env, commands: list[str]) -> list[int]:
    """Queue CPU-only commands, then start the scheduler once and wait for all of them:
    they start and end close together."""
    ids = [i for c in commands for i in add(tt, "--gpus", "0", "--no-start", "--", c)]
    tt.client().up()
    assert tt.client().wait(ids, timeout=60)
    return ids


def test_job_runs_in_its_window_with_gpus_env_cwd_and_a_tty(tt: Env) -> None:
    work = tt.root / "work dir"
    work.mkdir()
    tt.write(
        "job.yaml",
        f"""
name: probe
cwd: {work}
env: {{GREETING: "hi there", NUM: 3}}
vram: 4GiB
command: >
  printf 'cvd=%s order=%s id=%s port=%s greet=%s num=%s\\n'
  "$CUDA_VISIBLE_DEVICES" "$CUDA_DEVICE_ORDER" "$TMUXTRAIN_JOB_ID" "$MASTER_PORT" "$GREETING" "$NUM";
  pwd; if [ -t 1 ]; then echo tty=yes; else echo tty=no; fi
""",
    )
    [job_id] = add(tt, "job.yaml")
    j = wait_state(tt, job_id, "succeeded")
    text = Path(j["log_path"]).read_text()
    assert f"cvd=0 order=PCI_BUS_ID id={job_id} port=" in text
    assert "greet=hi there num=3" in text
    assert str(work) in text
    assert "tty=yes" in text
    assert j["exit_code"] == 0 and j["gpus"] == [0]
    # The window is named ID-NAME and stays after the job ends.
    windows = tt.tmux("list-windows", "-t", "=tmuxtrain:", "-F", "#{window_id} #{window_name}")
    assert f"{j['tmux_window']} {job_id}-probe" in windows


def test_an_ended_jobs_wrapper_and_status_are_removed(tt: Env) -> None:
    """The scheduler lists the folder of wrappers and statuses every tick: it must hold the
    running jobs' files only, not every job's ever run."""
    run_dir = Path(tt.settings.run_dir)
    ids = add(tt, "--gpus", "0", "--retries", "1", "--", 'exit "$((2 - TMUXTRAIN_ATTEMPT))"')
    ids += add(tt, "--gpus", "0", "--", "sleep 30")
    wait_state(tt, ids[0], "succeeded")
    wait_state(tt, ids[1], "running")
    assert job(tt, ids[0])["attempt"] == 2  # the first attempt failed, the retry succeeded
    files = sorted(p.name for p in run_dir.iterdir() if p.name[0].isdigit())
    assert files == [f"{ids[1]}.sh"]  # the running job's wrapper, which it is reading


def test_a_status_the_wrapper_cannot_write_still_ends_the_job(tt: Env) -> None:
    """A full disk, say: the wrapper then exits at once, and the scheduler takes the exit
    status from tmux's dead pane, rather than leaving the job running forever."""
    script = '"$TMUXTRAIN_HOME/run/$TMUXTRAIN_JOB_ID.sh"'  # where the status goes
    [a] = add(tt, "--gpus", "0", "--", f"rm {script}; mkdir {script}; exit 3")
    j = wait_state(tt, a, "failed", "succeeded")
    # tmux usually has the status (3); now and then its dead pane shows none (see
    # core.reconcile), and the job ends failed with an unknown code.
    assert j["state"] == "failed" and j["exit_code"] in (3, None), j


def test_job_inherits_the_submitters_environment_unless_clean(tt: Env) -> None:
    tt.set("MY_SETTING", "from-submitter")
    [a] = add(tt, "--gpus", "0", "--", 'echo "v=$MY_SETTING"')
    [b] = add(tt, "--gpus", "0", "--clean-env", "--", 'echo "v=$MY_SETTING path=$PATH"')
    wait_state(tt, a, "succeeded")
    wait_state(tt, b, "succeeded")
    assert "v=from-submitter" in Path(job(tt, a)["log_path"]).read_text()
    assert "v= path=/usr/local/bin:/usr/bin:/bin" in Path(job(tt, b)["log_path"]).read_text()


def test_nothing_of_the_tmux_servers_environment_reaches_a_job(tt: Env) -> None:
    """The server (often the user's own) holds whatever environment it started with; a job
    gets its submitter's environment and its pane's terminal variables, nothing else."""
    [a] = add(tt, "--gpus", "0", "--", "true")
    wait_state(tt, a, "succeeded")  # the session exists now
    tt.tmux("set-environment", "-g", "STRAY_GLOBAL", "1")
    tt.tmux("set-environment", "-t", "=tmuxtrain", "STRAY_SESSION", "2")
    [b] = add(tt, "--gpus", "0", "--clean-env", "--", "env | sort")
    j = wait_state(tt, b, "succeeded")
    seen = dict(
        line.split("=", 1) for line in Path(j["log_path"]).read_text().splitlines() if "=" in line
    )
    assert "STRAY_GLOBAL" not in seen and "STRAY_SESSION" not in seen
    assert seen["TMUX_PANE"].strip() == j["tmux_pane"]
    assert seen["TMUXTRAIN_JOB_ID"].strip() == str(b)


def test_concurrency_matches_free_gpus_and_never_overcommits(tt: Env) -> None:
    """7 exclusive one-GPU jobs on 3 GPUs: 3 run at once, never 4. Each job records how
    many run as it starts, then waits to be released (conditions, not speed: a loaded
    machine may take longer than any job's sleep to start the next window)."""
    tt.set("TMUXTRAIN_GPUS", "fake:3x24GiB")
    marker, release = tt.root / "running", tt.root / "release"
    marker.mkdir()
    cmd = (
        f"touch {marker}/$TMUXTRAIN_JOB_ID; ls {marker} | wc -l >> {tt.root}/seen; "
        f"until [ -e {release} ]; do sleep 0.05; done; rm {marker}/$TMUXTRAIN_JOB_ID"
    )
    ids = [i for _ in range(7) for i in add(tt, "--gpus", "1", "--no-start", "--", cmd)]
    tt.client().up()

    def running() -> int:
        return list(states(tt).values()).count("running")

    wait_until(lambda: running() == 3, what="3 jobs running")
    wait_until(lambda: len(list(marker.iterdir())) == 3, what="all 3 started their command")
    assert running() == 3  # the other 4 wait: no free GPU
    release.touch()
    assert tt.client().wait(ids, timeout=60)
    seen = [int(x) for x in (tt.root / "seen").read_text().split()]
    assert max(seen) == 3 and len(seen) == 7
    gpus_used = {tuple(job(tt, i)["gpus"]) for i in ids}
    assert gpus_used == {(0,), (1,), (2,)}


def test_shared_gpus_by_vram_respect_other_users_memory(tt: Env) -> None:
    gpus = tt.write("gpus.yaml", "- {name: Fake A100, memory: 40GiB, used: 10GiB}\n")
    tt.set("TMUXTRAIN_GPUS", f"fake:{gpus}")
    ids = [i for _ in range(4) for i in add(tt, "--vram", "10GiB", "--", "sleep 30")]
    # 40 GiB - 10 GiB used by someone else = room for three 10 GiB jobs.
    wait_until(lambda: list(states(tt).values()).count("running") == 3, what="3 running")
    time.sleep(0.3)  # give the scheduler a few more ticks to (wrongly) start the fourth
    st = states(tt)
    assert list(st.values()).count("running") == 3
    pending = next(i for i in ids if st[i] == "pending")
    assert job(tt, pending)["reason"] == (
        "waiting for 1 GPU with 10 GiB free: GPU 0 has 10 GiB used by other processes"
    )
    g = tt.client().gpus()[0]
    assert g["memory_used_mib"] == 40 * 1024 and sorted(g["jobs"]) == sorted(
        i for i in ids if st[i] == "running"
    )
    # The other user's process exits: the fourth job starts within the next ticks.
    gpus.write_text("- {name: Fake A100, memory: 40GiB, used: 0}\n")
    wait_state(tt, pending, "running")
    tt.cli("cancel", *map(str, ids), check=True)


def test_priority_and_dependencies(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    order = tt.root / "order"
    gate = tt.root / "gate"
    [first] = add(
        tt,
        "--name",
        "first",
        "--",
        f"echo first >> {order}; while [ ! -e {gate} ]; do sleep 0.05; done",
    )
    wait_state(tt, first, "running")
    tt.write(
        "chain.yaml",
        f"""
defaults: {{gpus: 1}}
jobs:
  - {{name: low, command: "echo low >> {order}", priority: 0}}
  - {{name: high, command: "echo high >> {order}", priority: 10}}
  - {{name: after-low, command: "echo after-low >> {order}", after: [low], priority: 100}}
""",
    )
    ids = add(tt, "chain.yaml")
    gate.touch()
    assert tt.client().wait([first, *ids], timeout=30)
    # high before low despite coming later; after-low waits for low despite its priority.
    assert order.read_text().split() == ["first", "high", "low", "after-low"]


def test_failed_dependency_cancels_dependents_and_wait_exits_1(tt: Env) -> None:
    [a] = add(tt, "--gpus", "0", "--name", "base", "--", "exit 4")
    [b] = add(tt, "--gpus", "0", "--after", "base", "--", "echo never")
    [c] = add(tt, "--gpus", "0", "--after", str(b), "--", "echo never")
    proc = tt.cli("wait", str(c), timeout=30)
    assert proc.returncode == 1
    assert job(tt, a)["state"] == "failed" and job(tt, a)["exit_code"] == 4
    jb, jc = job(tt, b), job(tt, c)
    assert jb["state"] == "cancelled" and f"dependency {a} (base) failed" in jb["reason"]
    assert jc["state"] == "cancelled" and f"dependency {b}" in jc["reason"]
    assert not Path(jb["log_path"]).exists()  # never ran


def test_retries_until_success_and_retry_on(tt: Env) -> None:
    count = tt.root / "count"
    # Fails twice, then succeeds: with retries 2 it ends succeeded on attempt 3.
    cmd = f"echo x >> {count}; [ $(wc -l < {count}) -ge 3 ]"
    [a] = add(tt, "--gpus", "0", "--retries", "2", "--", cmd)
    j = wait_state(tt, a, "succeeded", "failed")
    assert j["state"] == "succeeded" and j["attempt"] == 3
    assert [at["exit_code"] for at in j["attempts"]] == [1, 1, 0]
    # retry_on that does not match the log: no retry.
    tt.write(
        "oom.yaml",
        "command: echo 'some other error'; exit 1\ngpus: 0\nretries: 3\nretry_on: ['CUDA out of memory']\n",
    )
    [b] = add(tt, "oom.yaml")
    jb = wait_state(tt, b, "failed")
    assert jb["attempt"] == 1 and "retry_on" in jb["reason"]
    tt.write(
        "oom2.yaml",
        "command: echo 'RuntimeError CUDA out of memory.'; exit 1\ngpus: 0\nretries: 1\nretry_on: ['CUDA out of memory']\n",
    )
    [c] = add(tt, "oom2.yaml")
    jc = wait_until(
        lambda: (j := job(tt, c))["state"] == "failed" and j["attempt"] == 2 and j,
        what="2 attempts",
    )
    assert len(jc["attempts"]) == 2


def test_cancel_pending_and_running_jobs(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    [a] = add(tt, "--", "sleep 60")
    [b] = add(tt, "--", "sleep 60")
    wait_state(tt, a, "running")
    assert job(tt, b)["state"] == "pending"
    tt.cli("cancel", str(b), check=True)
    assert job(tt, b)["state"] == "cancelled"
    t0 = time.monotonic()
    tt.cli("cancel", str(a), check=True)
    ja = wait_state(tt, a, "cancelled")
    assert time.monotonic() - t0 < 5  # Ctrl-C is enough for sleep
    assert ja["exit_code"] == 130
    assert tt.cli("retry", str(a)).returncode == 0
    wait_state(tt, a, "running")
    tt.cli("cancel", str(a), check=True)
    wait_state(tt, a, "cancelled")


def test_cancel_escalates_to_sigkill_for_the_whole_tree(tt: Env) -> None:
    script = tt.write(
        "stubborn.sh",
        "trap '' INT TERM\n(trap '' INT TERM; sleep 300) &\necho $! > child.pid\nwhile true; do sleep 0.1; done\n",
    )
    [a] = add(tt, "--gpus", "0", "--", f"exec sh {script}")
    wait_state(tt, a, "running")
    child = int(
        wait_until(
            lambda: (tt.root / "child.pid").exists() and (tt.root / "child.pid").read_text().strip()
        )
    )
    t0 = time.monotonic()
    tt.cli("cancel", str(a), check=True)
    j = wait_state(tt, a, "cancelled", timeout=15)
    assert time.monotonic() - t0 >= 1.0  # took the grace period (2 s in the test config)
    assert j["exit_code"] == 128 + signal.SIGKILL, j["reason"]

    def gone() -> bool:
        try:
            with open(f"/proc/{child}/stat") as f:
                return f.read().split(") ")[1][0] == "Z"
        except FileNotFoundError:
            return True

    wait_until(gone, what="the grandchild to be killed")


def test_timeout_fails_the_job(tt: Env) -> None:
    tt.write("slow.yaml", "command: sleep 30\ngpus: 0\ntimeout: 1s\n")
    [a] = add(tt, "slow.yaml")
    j = wait_state(tt, a, "failed", timeout=15)
    assert j["reason"].startswith("timeout after 1s")


def test_hostile_names_and_commands_are_literal(tt: Env) -> None:
    pwned = tt.root / "PWNED"  # every payload runs in tt.root, so would create this file
    name = "x$(touch PWNED)`touch PWNED`;#{pane_id}#(touch PWNED)"
    env = "V=$(touch PWNED)#(touch PWNED)"
    [a] = add(tt, "--gpus", "0", "--name", name, "--env", env, "--", 'printf "%s\\n" "$V"')
    j = wait_state(tt, a, "succeeded")
    assert j["name"] == name
    assert not pwned.exists()
    windows = tt.tmux("list-windows", "-t", "=tmuxtrain:", "-F", "#{window_id}\t#{window_name}")
    wname = dict(line.split("\t", 1) for line in windows.splitlines())[j["tmux_window"]]
    assert wname == f"{a}-{name}"
    assert "$(touch PWNED)#(touch PWNED)" in Path(j["log_path"]).read_text()
    assert json.loads(tt.cli("ls", "--json", check=True).stdout)[0]["name"] == name


def test_output_of_a_job_that_exits_at_once_reaches_the_log(tt: Env) -> None:
    ids = run_together(tt, [f"echo instant-{n}" for n in range(15)])
    for n, i in enumerate(ids):
        assert f"instant-{n}" in Path(job(tt, i)["log_path"]).read_text()


def test_the_last_line_before_exit_counts(tt: Env) -> None:
    """A job's final metric, printed just before it exits, reaches its metrics: the job is
    finished at once (the next can start), its last output is read a moment later, once
    tmux has it all."""
    ids = run_together(tt, [f"printf 'loss=0.{n + 100}\\n'" for n in range(4)])
    want = [float(f"0.{n + 100}") for n in range(4)]

    def losses() -> list[float | None]:
        return [job(tt, i)["metrics"].get("loss") for i in ids]

    with contextlib.suppress(AssertionError):
        wait_until(lambda: losses() == want, timeout=10)
    assert losses() == want


def test_a_window_closed_at_once_still_gives_its_last_line(tt: Env) -> None:
    """With no finished windows kept, a window is closed only once its last output is in
    the log: closing it earlier would lose what tmux had not read yet."""
    config = Path(tt.settings.config_path or "")
    config.write_text(config.read_text() + "keep_finished_windows: 0\n")
    ids = run_together(tt, [f"seq 300; echo 'loss=0.{n + 100}'" for n in range(12)])
    for n, i in enumerate(ids):
        j = wait_until(lambda i=i: (j := job(tt, i))["metrics"].get("loss") and j, what="loss")  # type: ignore[misc]
        assert j["metrics"]["loss"] == float(f"0.{n + 100}")
        text = Path(j["log_path"]).read_text()
        assert "\n300\n" in text and f"job {i} attempt 1 exited with status 0" in text
    # ... and every window is closed once drained.
    wait_until(lambda: "-" not in tt.tmux("list-windows", "-t", "=tmuxtrain:", "-F",
                                          "#{window_name}").replace("scheduler", ""),
               what="the job windows closed")  # fmt: skip


def test_a_retry_waits_until_the_attempt_before_is_in_the_log(tt: Env) -> None:
    """A retry closes its failed attempt's window, which would lose that attempt's last
    lines (the error) if tmux had not written them to the log yet: it starts only once they
    are there, or OUTPUT_WAIT_S (2 s) after the failure. Here the log never shows them (the
    job removed its own log file), so the retry waits the 2 s, whatever its backoff."""
    config = Path(tt.settings.config_path or "")
    config.write_text(config.read_text().replace("retry_backoff: 0.2s", "retry_backoff: 0.001s"))
    log = '"$TMUXTRAIN_HOME/logs/$TMUXTRAIN_JOB_ID.log"'
    # (Once the log pipe's `cat` has made the file: else it would make it again after.)
    command = (
        f'if [ "$TMUXTRAIN_ATTEMPT" = 1 ]; then until [ -e {log} ]; do sleep 0.01; done; '
        f"rm -f {log}; exit 1; fi"
    )
    [a] = add(tt, "--gpus", "0", "--retries", "1", "--", command)
    j = wait_state(tt, a, "succeeded", "failed")
    first, second = j["attempts"]
    assert (first["exit_code"], second["exit_code"]) == (1, 0)
    assert second["started_at"] - first["finished_at"] >= 1.5


def test_scheduler_crash_loses_nothing(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "fake:2x24GiB")
    gate = tt.root / "gate"
    runs = tt.root / "runs"
    cmd = f"echo $TMUXTRAIN_JOB_ID >> {runs}; while [ ! -e {gate} ]; do sleep 0.05; done; exit 7"
    [a] = add(tt, "--", cmd)
    [b] = add(tt, "--", cmd)
    wait_state(tt, a, "running")
    wait_state(tt, b, "running")
    pid = tt.client().status()["scheduler"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not tt.client().status()["scheduler"]["running"], what="scheduler dead")
    gate.touch()  # both jobs end while no scheduler runs
    [c] = add(tt, "--no-start", "--gpus", "0", "--", "echo later")
    time.sleep(0.3)
    assert job(tt, a)["state"] == "running"  # nobody has looked yet
    tt.cli("up", check=True)
    assert job(tt, c)["state"] in ("pending", "running", "succeeded")
    ja, jb = wait_state(tt, a, "failed"), wait_state(tt, b, "failed")
    assert ja["exit_code"] == 7 and jb["exit_code"] == 7
    wait_state(tt, c, "succeeded")
    assert sorted(runs.read_text().split()) == sorted([str(a), str(b)])  # nothing ran twice


def test_scheduler_restart_adopts_running_jobs(tt: Env) -> None:
    gate = tt.root / "gate"
    [a] = add(tt, "--gpus", "0", "--", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    wait_state(tt, a, "running")
    tt.cli("down", check=True)
    assert not tt.client().status()["scheduler"]["running"]
    tt.cli("up", check=True)
    time.sleep(0.5)
    assert job(tt, a)["state"] == "running"  # adopted, not lost
    gate.touch()
    assert wait_state(tt, a, "succeeded")["attempt"] == 1


def test_killed_window_is_recorded_not_rerun(tt: Env) -> None:
    [a] = add(tt, "--gpus", "0", "--", "sleep 60")
    j = wait_state(tt, a, "running")
    tt.tmux("kill-window", "-t", j["tmux_window"])
    j = wait_state(tt, a, "failed")
    assert j["attempt"] == 1


def test_one_scheduler_per_home(tt: Env) -> None:
    tt.cli("up", check=True)
    pid = tt.client().status()["scheduler"]["pid"]
    proc = subprocess.run(
        [sys.executable, "-m", "tmuxtrain.daemon"],
        env=tt.environ,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "already runs" in proc.stderr
    assert tt.client().status()["scheduler"]["pid"] == pid


def test_status_down_up_and_jobs_survive_down(tt: Env) -> None:
    st = json.loads(tt.cli("status", "--json", check=True).stdout)
    assert (st["scheduler"]["running"], st["scheduler"]["pid"]) == (False, None)
    assert st["scheduler"]["log"] == tt.settings.scheduler_log
    [a] = add(tt, "--gpus", "0", "--", "sleep 2; echo done")
    st = json.loads(tt.cli("status", "--json", check=True).stdout)
    assert st["scheduler"]["running"] and st["scheduler"]["pid"] > 0
    wait_state(tt, a, "running")
    tt.cli("down", check=True)
    # The job goes on in its window while no scheduler runs, and is recorded on the next up.
    wait_until(lambda: "done" in Path(job(tt, a)["log_path"]).read_text(), what="job output")
    tt.cli("up", check=True)
    wait_state(tt, a, "succeeded")


def test_concurrent_submitters(tt: Env) -> None:
    """8 processes adding 10 jobs each at once: 80 jobs, 80 distinct ids."""
    tmuxtrain = os.path.join(os.path.dirname(sys.executable), "tmuxtrain")
    script = "; ".join(f"{tmuxtrain} add --no-start --gpus 0 -- true" for _ in range(10))
    procs = [
        subprocess.Popen(
            ["sh", "-c", script], env=tt.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    ids = [int(x) for out, _ in outs for x in out.split()]
    assert len(ids) == len(set(ids)) == 80
    assert len(tt.client().list()) == 80


def test_hooks_run_with_job_fields_and_a_failing_hook_breaks_nothing(tt: Env) -> None:
    out = tt.root / "hooks.out"
    (tt.root / "config.yaml").write_text(
        "retry_backoff: 0.2s\ncancel_grace: 2s\nheadroom: 0\n"
        f"hooks: {{failed: 'echo cfg-failed {{id}} {{exit_code}} >> {out}', started: 'exit 3'}}\n"
    )
    tt.write(
        "job.yaml",
        f"""
name: "h$(touch PWNED)"
gpus: 0
command: exit 5
retries: 1
hooks:
  started: 'echo started "$TMUXTRAIN_JOB_NAME" {{attempt}} >> {out}'
  retrying: 'echo retrying {{name}} >> {out}'
  failed: 'echo job-failed {{name}} >> {out}'
""",
    )
    [a] = add(tt, "job.yaml")
    wait_state(tt, a, "failed")
    lines = wait_until(
        lambda: (
            out.exists() and len(out.read_text().splitlines()) >= 5 and out.read_text().splitlines()
        )
    )
    assert sorted(lines) == sorted(
        [
            "started h$(touch PWNED) 1",
            "retrying h$(touch PWNED)",
            "started h$(touch PWNED) 2",
            f"cfg-failed {a} 5",
            "job-failed h$(touch PWNED)",
        ]
    )
    assert not (tt.root / "PWNED").exists()
    [b] = add(tt, "--gpus", "0", "--", "true")  # the failing 'started' hook changed nothing
    wait_state(tt, b, "succeeded")


def test_a_job_killed_by_a_signal_is_noticed_without_waiting_for_the_poll(tt: Env) -> None:
    """Nothing records a status when the wrapper itself is SIGKILLed: only tmux, over the
    scheduler's control-mode connection, can wake it before its 5 s reconcile poll."""
    [a] = add(tt, "--gpus", "0", "--", "sleep 60")
    j = wait_state(tt, a, "running")
    pid = int(tt.tmux("display-message", "-p", "-t", j["tmux_pane"], "#{pane_pid}").strip())
    time.sleep(0.2)  # let the scheduler's periodic reconcile fall far from now
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    j = wait_state(tt, a, "failed", timeout=10)
    assert time.monotonic() - t0 < 3.5
    assert j["exit_code"] == 128 + signal.SIGKILL


def test_process_start_is_psutils_create_time_and_none_for_the_dead() -> None:
    """The start time that tells a job's wrapper from a later process with its pid: read
    from /proc directly, it must agree with psutil's (older rows were stored with it)."""
    import psutil

    from tmuxtrain.procs import process_start

    child = subprocess.Popen(["sleep", "30"])
    try:
        for pid in (os.getpid(), child.pid):
            assert process_start(pid) == psutil.Process(pid).create_time()
        child.kill()
        wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
        assert process_start(child.pid) is None  # a zombie has ended
    finally:
        child.kill()
        child.wait()
    assert process_start(child.pid) is None  # reaped: gone
