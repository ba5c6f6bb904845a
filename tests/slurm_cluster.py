"""A private single-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian's
`slurm-wlm` and `munge`, run in the foreground (`-D`, `-F`) under our control, as root.

Everything lives in one folder: the munge key and socket, slurm.conf and gres.conf, the
state and spool folders, the logs, and the GPU device nodes (character devices made with
mknod, major 195 like nvidia's: Slurm drops a GPU whose `File=` does not exist). The ports are
free ones picked at start, so two clusters, or a system Slurm, never clash; clients reach this
one only through `SLURM_CONF` in `cluster.env`.

`start_cluster(folder)` returns a `SlurmCluster`; `stop()` ends only what it started, by pid:
the three daemons, then what they started: the job steps (slurmstepd processes whose
environment names this cluster's slurm.conf) and the processes of its jobs (that slurm.conf
and a SLURM_JOB_ID), with their children. `cluster.json` in the folder records the pids
(with their start times, so a reused pid is never hit), and a later start ends the daemons of
an earlier run whose owner died without stopping them, and nothing else.

`ClusterUnavailable` says in one line why no cluster could start (not root, a package
missing, a daemon that failed, with that daemon's own log line); the fixture turns it into a
skip.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol")
NVIDIA_MAJOR = 195
PREFIX = "tmuxtrain-slurm-"
# Variables that would change what the Slurm clients print or submit (SQUEUE_FORMAT,
# SBATCH_PARTITION...) or point them at another cluster: never passed on from the caller.
_FOREIGN = re.compile(r"^(SLURM|SBATCH|SALLOC|SRUN|SQUEUE|SACCT|SINFO|SCANCEL|SCONTROL)_")
# Log lines every start prints on Debian's build, which say nothing about a failure.
_NOISE = re.compile(
    r"pmix|PMIx|MPI: |mpi/|state file|NOTE: Trying backup|MailProg|xcpuinfo_hwloc|"
    r"Domain socket directory",
)


class ClusterUnavailable(Exception):
    """No cluster can start here; the message is one line saying why."""


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    env: dict[str, str]
    pids: dict[str, int]
    node: str
    partition: str
    cluster_name: str
    gpu_devices: list[Path]
    cpus: int
    memory_mib: int
    ports: tuple[int, int]  # slurmctld, slurmd
    version: str
    started_s: float = 0.0  # seconds start_cluster took
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    # -- clients -----------------------------------------------------------------------------
    def run(
        self, *argv: str, check: bool = True, timeout: float = 30, cwd: str | Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client (or any command) against this cluster."""
        proc = subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout,
            cwd=cwd, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def sbatch(self, *args: str, cwd: str | Path | None = None) -> str:
        """Submit with `sbatch --parsable`; returns what it prints (the job id)."""
        return self.run("sbatch", "--parsable", *args, cwd=cwd).stdout.strip()

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- lifecycle ---------------------------------------------------------------------------
    def alive(self) -> dict[str, bool]:
        return {name: _alive(pid) for name, pid in self.pids.items()}

    def stop(self, timeout: float = 10.0) -> None:
        """End the daemons (TERM, then KILL after `timeout`), then the job steps and job
        processes they left (SIGKILL), then munged."""
        steps = _job_procs(self.conf)
        slurm = {n: p for n, p in self.pids.items() if n != "munged"}
        _terminate(slurm, self._procs, timeout)
        _kill_trees(steps | _job_procs(self.conf))
        deadline = time.monotonic() + timeout
        while (left := _job_procs(self.conf)) and time.monotonic() < deadline:
            _kill_trees(left)  # a slurmstepd that was still finishing its job
            time.sleep(0.02)
        _terminate({n: p for n, p in self.pids.items() if n == "munged"}, self._procs, timeout)
        self.pids.clear()
        atexit.unregister(self.stop)
        with contextlib.suppress(OSError):
            (self.root / "cluster.json").unlink()


def start_cluster(
    root: Path,
    *,
    gpus: int = 4,
    cpus: int = 8,
    memory_mib: int = 64000,
    extra_conf: str = "",
    timeout: float = 30.0,
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd in `root` (made if missing) and wait until the node
    is idle. Raises ClusterUnavailable with one line when that cannot happen."""
    t0 = time.monotonic()
    _preflight()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    _check_searchable(root)
    _reap_folder(root)
    _write_record(root, {"owner": _ident(os.getpid()), "daemons": {}})
    for stale in ("state", "spool", "log", "jobcomp.log"):  # a fresh cluster: no old jobs
        path = root / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for attempt in range(3):
        try:
            return _start(root, gpus, cpus, memory_mib, extra_conf, t0 + timeout, t0)
        except ClusterUnavailable as e:
            # The free ports were picked before the daemons bind them: another process may
            # have taken one in between. Try other ports then; anything else is final.
            if "Address already in use" not in str(e) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start(
    root: Path, gpus: int, cpus: int, memory_mib: int, extra_conf: str, deadline: float,
    t0: float,
) -> SlurmCluster:  # fmt: skip
    conf = root / "slurm.conf"
    name = f"tt{os.getpid()}"
    node, partition = "tt-node", "gpu"
    for sub in ("munge", "state", "log", "dev", f"spool/slurmd-{node}"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(root / sub, 0o755)  # munged wants its socket folder searchable by all
    devices = _make_gpu_devices(root / "dev", gpus)
    key = root / "munge" / "munge.key"
    if not key.exists():
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(1024))
    ports = _free_ports(2)
    conf.write_text(
        _slurm_conf(root, name, node, partition, ports, gpus, cpus, memory_mib, extra_conf)
    )
    (root / "gres.conf").write_text(
        f"NodeName={node} Name=gpu File={root}/dev/nvidia[0-{gpus - 1}]\n" if gpus else ""
    )
    (root / "plugstack.conf").write_text("")

    env = {k: v for k, v in os.environ.items() if not _FOREIGN.match(k)}
    env["SLURM_CONF"] = str(conf)
    cluster = SlurmCluster(
        root=root, conf=conf, env=env, pids={}, node=node, partition=partition,
        cluster_name=name, gpu_devices=devices, cpus=cpus, memory_mib=memory_mib,
        ports=(ports[0], ports[1]), version=_version(),
    )  # fmt: skip
    sock = root / "munge" / "munge.socket"
    try:
        _spawn(cluster, "munged", [
            "munged", "-F", f"--socket={sock}", f"--key-file={key}",
            f"--pid-file={root}/munge/munged.pid", f"--seed-file={root}/munge/munged.seed",
            f"--log-file={root}/log/munged.log", "--num-threads=2",
        ])  # fmt: skip
        _wait(cluster, "munged", deadline, lambda: _unix_connects(sock))
        _spawn(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        _wait(cluster, "slurmctld", deadline, lambda: _tcp_connects(ports[0]))
        _spawn(cluster, "slurmd", ["slurmd", "-D", "-N", node, "-f", str(conf)])
        _wait(
            cluster,
            "slurmd",
            deadline,
            lambda: _node_state(cluster) == "idle",
            every=0.1,
            why=lambda: f"node {_node_state(cluster, '%T: %E') or 'not registered'}",
        )
    except BaseException:
        cluster.stop(timeout=3)
        raise
    cluster.started_s = time.monotonic() - t0
    atexit.register(cluster.stop)  # should the caller forget; stop() is idempotent
    return cluster


# -- configuration ---------------------------------------------------------------------------


def _slurm_conf(
    root: Path, name: str, node: str, partition: str, ports: list[int],
    gpus: int, cpus: int, memory_mib: int, extra: str,
) -> str:  # fmt: skip
    host = socket.gethostname().split(".")[0]
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    return f"""\
# Generated by tests/slurm_cluster.py: a private single-node cluster for tests.
ClusterName={name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/slurmd-%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
PlugStackConfig={root}/plugstack.conf
MailProg=/bin/true
# No cgroups: the processes of a job are tracked by parentage, nothing is confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
# No slurmdbd: sacct reads the job-completion log (`sacct -c`); without slurmdbd,
# AccountingStorageTRES=gres/gpu is fatal, so GPUs are not in the TRES.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=4000
# The node is what this file says, whatever the machine has (a test machine has few cores).
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={cpus} RealMemory={memory_mib}{gres} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
{extra}
"""


def _make_gpu_devices(folder: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        path = folder / f"nvidia{i}"
        if not path.exists():
            try:
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(NVIDIA_MAJOR, i))
            except OSError as e:
                raise ClusterUnavailable(f"cannot make GPU device node {path}: {e}") from None
        out.append(path)
    return out


# -- checks ----------------------------------------------------------------------------------


def _preflight() -> None:
    if os.name != "posix" or not Path("/proc/self/stat").exists():
        raise ClusterUnavailable("needs Linux (/proc)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("needs root (slurmd runs jobs as their users)")
    missing = [p for p in (*DAEMONS, *CLIENTS, "munge") if shutil.which(p) is None]
    if missing:
        raise ClusterUnavailable(
            f"Slurm or munge not installed (no {', '.join(missing)}); "
            "scripts/install-slurm.sh installs slurm-wlm and munge"
        )


def _check_searchable(root: Path) -> None:
    for folder in [root, *root.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise ClusterUnavailable(
                f"munged needs every folder above its socket searchable by all, "
                f"and {folder} is {stat.filemode(mode)}"
            )


def _version() -> str:
    # Not `sbatch --version`: without a slurm.conf it retries for 60 s.
    proc = subprocess.run(["slurmd", "-V"], capture_output=True, text=True, timeout=10)
    return proc.stdout.strip().split()[-1] if proc.stdout.strip() else "?"


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# -- processes -------------------------------------------------------------------------------


def _spawn(cluster: SlurmCluster, name: str, argv: list[str]) -> None:
    out = open(cluster.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 (the child keeps it)
    try:
        proc = subprocess.Popen(
            argv, env=cluster.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, cwd=cluster.root,
        )  # fmt: skip
    finally:
        out.close()
    cluster._procs[name] = proc
    cluster.pids[name] = proc.pid
    record = _read_record(cluster.root) or {"owner": _ident(os.getpid())}
    record["conf"] = str(cluster.conf)
    record.setdefault("daemons", {})[name] = _ident(proc.pid)
    _write_record(cluster.root, record)


def _wait(
    cluster: SlurmCluster, name: str, deadline: float, ready: Callable[[], bool],
    every: float = 0.02, why: Callable[[], str] | None = None,
) -> None:  # fmt: skip
    while True:
        for daemon, proc in cluster._procs.items():  # any of them, not only the awaited one
            code = proc.poll()
            if code is not None:
                last = _last_error(cluster.log(daemon))
                raise ClusterUnavailable(f"{daemon} exited with {code}: {last}")
        if ready():
            return
        if time.monotonic() > deadline:
            detail = f" ({why()})" if why else ""
            raise ClusterUnavailable(
                f"{name} not ready in time{detail}: {_last_error(cluster.log(name))}"
            )
        time.sleep(every)


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern in ("fatal", "error"):
        hits = [ln for ln in lines if pattern in ln.lower() and not _NOISE.search(ln)]
        if hits:
            return hits[-1]
    return lines[-1] if lines else "(it printed nothing)"


def _unix_connects(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def _tcp_connects(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _node_state(cluster: SlurmCluster, fmt: str = "%T") -> str:
    proc = subprocess.run(
        ["sinfo", "-h", "-N", "-n", cluster.node, "-o", fmt], env=cluster.env,
        capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return proc.stdout.strip()


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


def _ident(pid: int) -> list[int]:
    return [pid, _start_time(pid) or 0]


def _same(ident: Iterable[int]) -> bool:
    """Is the process recorded as (pid, start time) still that same process?"""
    pid, started = ident
    return started != 0 and _start_time(pid) == started and _alive(pid)


def _alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] != "Z"


def _terminate(
    pids: dict[str, int], procs: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    for pid in pids.values():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, pid in pids.items():
        proc = procs.get(name)
        while _alive(pid) and time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.02)
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _job_procs(conf: Path) -> set[int]:
    """The job steps (slurmstepd) of this cluster's slurmd and the processes of its jobs:
    those whose environment has SLURM_CONF=conf and that are a slurmstepd or carry a
    SLURM_JOB_ID. A client that merely has SLURM_CONF set (a shell running squeue) is not
    one of them, nor is this process."""
    needle = f"SLURM_CONF={conf}".encode()
    found = set()
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if needle not in environ:
                continue
            stepd = (entry / "comm").read_text().strip() == "slurmstepd"
        except OSError:
            continue
        if stepd or any(v.startswith(b"SLURM_JOB_ID=") for v in environ):
            found.add(int(entry.name))
    return found


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _kill_trees(pids: set[int]) -> None:
    if not pids:
        return
    tree = _children()
    todo, everything = list(pids), set()
    while todo:
        pid = todo.pop()
        if pid not in everything and pid != os.getpid():
            everything.add(pid)
            todo.extend(tree.get(pid, []))
    for pid in everything:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# -- leftovers of earlier runs ---------------------------------------------------------------


def _read_record(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / "cluster.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(root: Path, record: dict[str, Any]) -> None:
    tmp = root / "cluster.json.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(root / "cluster.json")


def _reap_folder(root: Path) -> None:
    """End what an earlier, dead run left in `root` (its recorded daemons, by pid and start
    time, and the job steps naming its slurm.conf). Touches nothing, and raises
    ClusterUnavailable, when that run's owner is still alive."""
    record = _read_record(root)
    if record is None:
        return
    owner = record.get("owner") or [0, 0]
    if owner[0] != os.getpid() and _same(owner):
        raise ClusterUnavailable(f"{root} holds the cluster of live pid {owner[0]}")
    daemons = {n: i for n, i in (record.get("daemons") or {}).items() if _same(i)}
    for _name, (pid, _) in daemons.items():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if record.get("conf"):
        _kill_trees(_job_procs(Path(record["conf"])))
    with contextlib.suppress(OSError):
        (root / "cluster.json").unlink()


def reap_leftovers(parent: Path | None = None) -> list[Path]:
    """Remove the `tmuxtrain-slurm-*` folders under `parent` (default: the temp folder) whose
    owner died without stopping its cluster, ending its processes first. Folders of live
    owners are left alone. Returns the folders removed."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        record = _read_record(folder)
        if record is None:
            continue
        owner = record.get("owner") or [0, 0]
        if owner[0] == os.getpid() or _same(owner):
            continue
        _reap_folder(folder)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def new_folder() -> Path:
    """A fresh /tmp/tmuxtrain-slurm-XXXX, 0755 (munged needs its socket's folders searchable)."""
    parent = Path(tempfile.gettempdir())
    try:
        _check_searchable(parent)
    except ClusterUnavailable:
        parent = Path("/tmp")
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    os.chmod(folder, 0o755)
    return folder


def main() -> None:
    """`python -m tests.slurm_cluster [FOLDER] [Key=Value...]`: a cluster by hand, until
    Ctrl-C; Key=Value lines are added to its slurm.conf."""
    import sys

    args = sys.argv[1:]
    extra = [a for a in args if "=" in a]
    paths = [a for a in args if "=" not in a]
    folder = Path(paths[0]) if paths else new_folder()
    try:
        cluster = start_cluster(folder, extra_conf="\n".join(extra))
    except ClusterUnavailable as e:
        raise SystemExit(f"no cluster: {e}") from None
    print(f"started in {cluster.started_s:.2f}s (Slurm {cluster.version}), pids {cluster.pids}")
    print(f"export SLURM_CONF={cluster.conf}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        cluster.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
