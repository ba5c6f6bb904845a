"""Smoke tests of the private cluster itself, with plain sbatch/squeue/sacct/scancel (no
tmuxtrain code): they pin down the Slurm behaviour the Slurm runner will rely on (see
docs/slurm-facts.md). Jobs wait for files the test writes, never for fixed sleeps."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE"}  # fmt: skip


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def wait_for_file(path: Path | str) -> str:
    """Shell lines that wait (at most 60 s) until `path` exists ($VARS in it expand)."""
    return f'i=0; while [ ! -e "{path}" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n'


def queue(cluster: SlurmCluster) -> dict[str, tuple[str, str, str]]:
    """Every job slurmctld still holds, in ONE squeue: %i (`123`, `123_4`, `123_[5-7%2]`)
    -> (raw job id, state, reason)."""
    out = cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%A|%T|%r").stdout
    rows = (line.split("|") for line in out.splitlines() if line)
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def wait_final(cluster: SlurmCluster, *ids: str, timeout: float = 30) -> dict[str, str]:
    def done() -> dict[str, str] | None:
        q = queue(cluster)
        states = {i: q[i][1] for i in ids if i in q}
        return states if len(states) == len(ids) and set(states.values()) <= FINAL else None

    return wait_until(done, timeout=timeout, interval=0.1, what=f"jobs {ids} to end")


def sacct_c(cluster: SlurmCluster, *ids: str) -> dict[str, tuple[str, str]]:
    """`sacct -c` (the job-completion log): job id -> (state, exit code); the last record
    of a job wins (a requeued job has one record per run)."""
    out = cluster.run(
        "sacct", "-c", "-n", "--parsable2", "-o", "JobID,State,ExitCode", "-j", ",".join(ids)
    ).stdout
    rows = (line.split("|") for line in out.splitlines() if line)
    return {r[0]: (r[1], r[2]) for r in rows}


def wait_sacct(cluster: SlurmCluster, *ids: str) -> dict[str, tuple[str, str]]:
    return wait_until(
        lambda: (r := sacct_c(cluster, *ids)) and set(ids) <= set(r) and r,
        timeout=10, interval=0.1, what=f"sacct -c records of {ids}",
    )  # fmt: skip


def test_the_cluster_has_one_idle_node_with_four_gpus(slurm_cluster: SlurmCluster) -> None:
    c = slurm_cluster
    line = c.run("sinfo", "-h", "-N", "-O", "NodeList:40,Partition:40,StateLong:20,Gres:40")
    assert line.stdout.split() == [c.node, f"{c.partition}*", "idle", "gpu:4"]
    for i, dev in enumerate(c.gpu_devices):
        st = dev.stat()
        assert stat.S_ISCHR(st.st_mode) and (st.st_rdev >> 8, st.st_rdev & 0xFF) == (195, i)
    assert set(c.alive().values()) == {True}
    assert c.version.startswith(("22.", "23.", "24.", "25."))


def test_gpu_jobs_get_disjoint_gpus(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    c = slurm_cluster
    job = script(tmp_path / "gpu.sh",
        f'echo "$CUDA_VISIBLE_DEVICES $SLURM_JOB_GPUS" > {tmp_path}/gpu-$SLURM_JOB_ID\n'
        + wait_for_file(tmp_path / "release"))  # fmt: skip
    ids = [c.sbatch("--gres=gpu:1", "-o", f"{tmp_path}/%j.out", str(job)) for _ in range(5)]
    assert all(i.isdigit() for i in ids)

    def four_run_one_waits() -> bool:
        q = queue(c)
        states = sorted((q[i][1], q[i][2]) for i in ids)
        return states == [("PENDING", "Resources")] + [("RUNNING", "None")] * 4

    wait_until(four_run_one_waits, timeout=20, what="4 GPU jobs running and 1 waiting")

    def written() -> list[list[str]] | None:
        pairs = [text(p).split() for p in sorted(tmp_path.glob("gpu-*"))]
        return pairs if len(pairs) == 4 and all(len(p) == 2 for p in pairs) else None

    pairs = wait_until(written, what="the 4 running jobs' CUDA_VISIBLE_DEVICES")
    # Slurm sets CUDA_VISIBLE_DEVICES from the gres, even on fake device files; disjoint.
    assert sorted(cvd for cvd, _ in pairs) == ["0", "1", "2", "3"]
    assert all(cvd == job_gpus for cvd, job_gpus in pairs)
    (tmp_path / "release").touch()
    assert wait_final(c, *ids) == dict.fromkeys(ids, "COMPLETED")
    last = (tmp_path / f"gpu-{ids[-1]}").read_text().split()
    assert last[0] in {"0", "1", "2", "3"}


def test_exit_codes_reach_sacct_c(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    c = slurm_cluster
    out = ["-o", f"{tmp_path}/%j.out"]
    ok = c.sbatch(*out, str(script(tmp_path / "ok.sh", "echo fine\n")))
    fail = c.sbatch(*out, str(script(tmp_path / "fail.sh", "exit 3\n")))
    killed = c.sbatch(*out, str(script(tmp_path / "kill.sh", "kill -9 $$\n")))
    running = c.sbatch(*out, str(script(tmp_path / "run.sh", "echo up; exec sleep 300\n")))
    held = c.sbatch("--hold", *out, str(tmp_path / "ok.sh"))
    wait_until(lambda: queue(c)[running][1] == "RUNNING", what="the long job to run")
    wait_until(lambda: "up" in text(tmp_path / f"{running}.out"), what="its output")
    assert queue(c)[held][1:] == ("PENDING", "JobHeldUser")
    c.run("scancel", running, held)
    assert wait_final(c, ok, fail, killed, running, held) == {
        ok: "COMPLETED", fail: "FAILED", killed: "FAILED", running: "CANCELLED",
        held: "CANCELLED",
    }  # fmt: skip
    q = queue(c)
    assert (q[fail][2], q[killed][2]) == ("NonZeroExitCode", "JobLaunchFailure")
    assert wait_sacct(c, ok, fail, killed, running, held) == {
        ok: ("COMPLETED", "0:0"), fail: ("FAILED", "3:0"), killed: ("FAILED", "0:9"),
        running: ("CANCELLED", "0:0"), held: ("CANCELLED", "0:0"),
    }  # fmt: skip
    assert "CANCELLED AT" in (tmp_path / f"{running}.out").read_text()
    # Without slurmdbd, plain sacct has nothing to read.
    plain = c.run("sacct", "--parsable2", "-o", "JobID,State,ExitCode", check=False)
    assert plain.returncode == 1 and "accounting storage is disabled" in plain.stdout + plain.stderr


def test_a_failed_dependency(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    c = slurm_cluster
    out = ["-o", f"{tmp_path}/%j.out"]
    ok, fail = script(tmp_path / "ok.sh", "echo fine\n"), script(tmp_path / "fail.sh", "exit 1\n")
    a = c.sbatch(*out, str(fail))
    stuck = c.sbatch(*out, f"--dependency=afterok:{a}", str(ok))
    dropped = c.sbatch(*out, f"--dependency=afterok:{a}", "--kill-on-invalid-dep=yes", str(ok))
    b = c.sbatch(*out, str(ok))
    after_b = c.sbatch(*out, f"--dependency=afterok:{b}", "--kill-on-invalid-dep=yes", str(ok))
    assert wait_final(c, a, dropped, b, after_b) == {
        a: "FAILED",
        dropped: "CANCELLED",
        b: "COMPLETED",
        after_b: "COMPLETED",
    }
    assert queue(c)[dropped][2] == "DependencyNeverSatisfied"
    # Without --kill-on-invalid-dep the dependent stays pending forever.
    wait_until(lambda: queue(c)[stuck][1:] == ("PENDING", "DependencyNeverSatisfied"))
    c.run("scancel", stuck)
    assert wait_final(c, stuck) == {stuck: "CANCELLED"}
    assert wait_sacct(c, dropped)[dropped] == ("CANCELLED", "0:0")


def test_scancel_signal_reaches_the_batch_script_only_with_batch_or_full(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    c = slurm_cluster
    log = tmp_path / "signals.log"
    child = (
        "import signal, sys, time\n"
        "def h(n, f):\n"
        f"    open({str(log)!r}, 'a').write('child ' + signal.Signals(n).name + '\\n')\n"
        "    if n == signal.SIGINT: sys.exit(0)\n"
        "for s in (signal.SIGINT, signal.SIGUSR1): signal.signal(s, h)\n"
        f"open({str(log)!r}, 'a').write('child ready\\n')\n"
        "while True: time.sleep(0.05)\n"
    )
    (tmp_path / "child.py").write_text(child)
    job = script(
        tmp_path / "trap.sh",
        f"""\
log={shlex.quote(str(log))}
trap 'echo shell INT >> $log' INT
trap 'echo shell USR1 >> $log' USR1
python3 {tmp_path}/child.py &
pid=$!
while kill -0 $pid 2>/dev/null; do wait $pid; done
echo shell done >> $log
""",
    )
    j = c.sbatch("-o", f"{tmp_path}/%j.out", str(job))
    wait_until(lambda: log.exists() and "child ready" in log.read_text(), what="the job to start")
    c.run("scancel", "--signal=INT", j)  # no --batch/--full: reaches no process of the script
    c.run("scancel", "--signal=USR1", "--batch", j)  # the batch shell only
    wait_until(lambda: "shell USR1" in log.read_text(), what="USR1 at the shell")
    c.run("scancel", "--signal=INT", "--full", j)  # the shell and all its children
    assert wait_final(c, j) == {j: "COMPLETED"}
    lines = log.read_text().splitlines()
    assert lines[:2] == ["child ready", "shell USR1"]  # the plain INT reached no one
    assert sorted(lines[2:4]) == ["child SIGINT", "shell INT"] and lines[4:] == ["shell done"]


def test_an_array_with_a_throttle(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    c = slurm_cluster
    job = script(tmp_path / "task.sh",
        'echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_JOB_ID"\n'
        + wait_for_file(f"{tmp_path}/release-$SLURM_ARRAY_TASK_ID"))  # fmt: skip
    j = c.sbatch("--array=0-3%2", "-o", f"{tmp_path}/arr-%A_%a.out", str(job))
    assert j.isdigit()  # `sbatch --parsable --array` prints the array's job id alone

    def running(tasks: list[int]) -> dict[str, tuple[str, str, str]] | None:
        q = queue(c)
        now = sorted(k for k, v in q.items() if k.startswith(f"{j}_") and v[1] == "RUNNING")
        assert len(now) <= 2, now  # the %2 throttle
        return q if now == [f"{j}_{t}" for t in tasks] else None

    q = wait_until(lambda: running([0, 1]), what="tasks 0 and 1 running")
    # The tasks not started yet are one record, `J_[2-3%2]`, waiting on the throttle.
    assert q[f"{j}_[2-3%2]"][1:] == ("PENDING", "JobArrayTaskLimit")
    for t in (0, 1):
        (tmp_path / f"release-{t}").touch()
    wait_until(lambda: running([2, 3]), what="tasks 2 and 3 running")
    for t in (2, 3):
        (tmp_path / f"release-{t}").touch()
    tasks = [f"{j}_{t}" for t in range(4)]
    assert wait_final(c, *tasks) == dict.fromkeys(tasks, "COMPLETED")
    raw = {queue(c)[t][0] for t in tasks}
    assert j in raw and len(raw) == 4  # one task keeps the array's own job id
    for t in range(4):
        array_id, task_id, job_id = (tmp_path / f"arr-{j}_{t}.out").read_text().split()[:3]
        assert (array_id, task_id) == (j, str(t)) and job_id in raw
    # sacct -c knows tasks only by their raw job ids, never as 123_4.
    assert set(wait_sacct(c, *raw)) == raw


def test_paths_with_a_space_and_open_mode_append(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    c = slurm_cluster
    work = tmp_path / "a b"
    (work / "logs").mkdir(parents=True)
    bad = script(work / "bad.sh", f"#SBATCH --chdir={work}\necho\n")
    proc = c.run("sbatch", "--parsable", str(bad), check=False)
    assert proc.returncode != 0 and "Invalid directive found in batch script: b" in proc.stderr

    def job(name: str, mode: str) -> Path:
        return script(work / f"{name}.sh",
            f'#SBATCH --chdir="{work}"\n#SBATCH --output="{work}/logs/{name}.log"\n'
            + (f"#SBATCH --open-mode={mode}\n" if mode else "")
            + 'echo "$SLURM_JOB_ID in $PWD"\n')  # fmt: skip

    appended, truncated = job("append", "append"), job("truncate", "")
    a1, t1 = c.sbatch(str(appended)), c.sbatch(str(truncated))
    a2 = c.sbatch(f"--dependency=afterany:{a1}", str(appended))
    t2 = c.sbatch(f"--dependency=afterany:{t1}", str(truncated))
    # Given on the command line, a path with a space needs no more than the shell's quoting.
    cl = c.sbatch(f"--chdir={work}", f"--output={work}/logs/cl-%j.log", str(work / "append.sh"))
    assert wait_final(c, a1, a2, t1, t2, cl) == dict.fromkeys([a1, a2, t1, t2, cl], "COMPLETED")
    assert (work / "logs/append.log").read_text() == f"{a1} in {work}\n{a2} in {work}\n"
    assert (work / "logs/truncate.log").read_text() == f"{t2} in {work}\n"
    assert (work / f"logs/cl-{cl}.log").read_text() == f"{cl} in {work}\n"
    # Nothing creates the output folder: the job fails at once, FAILED 0:53, and no file.
    missing = c.sbatch("-o", f"{work}/nowhere/%j.log", str(appended))
    assert wait_final(c, missing) == {missing: "FAILED"}
    assert not (work / "nowhere").exists()
    assert wait_sacct(c, missing)[missing] == ("FAILED", "0:53")
