"""A test job's stand-in for a CUDA context on simulated GPUs.

    python fake_gpu_use.py GPUS_FILE SIZE [--until PATH] [--seconds S]

Adds `{pid: <own pid>, memory: SIZE}` to the `processes` of each GPU in
CUDA_VISIBLE_DEVICES in the fake GPU file (as NVML would list a real job's process), waits
until PATH exists (or S seconds pass), then takes its entries out again and exits, as a
real process's memory is freed when it ends. Rewrites are locked and atomic, so jobs
sharing the file never lose each other's entries and the scheduler never reads half a
file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from typing import Any

import yaml


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    with open(path + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def rewrite(path: str, gpus: list[int], pid: int, size: str | None) -> None:
    """Add (size given) or remove this pid's entries on `gpus`."""
    with locked(path):
        with open(path, encoding="utf-8") as f:
            doc: list[dict[str, Any]] = yaml.safe_load(f)
        for i in gpus:
            procs = [p for p in doc[i].get("processes") or [] if p.get("pid") != pid]
            if size is not None:
                procs.append({"pid": pid, "memory": size})
            doc[i]["processes"] = procs
        tmp = f"{path}.{pid}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f)
        os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("size")
    ap.add_argument("--until")
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args()
    gpus = [int(x) for x in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if x]
    pid = os.getpid()
    rewrite(a.file, gpus, pid, a.size)
    print(f"using {a.size} on GPU {gpus}", flush=True)
    try:
        deadline = time.monotonic() + a.seconds
        while time.monotonic() < deadline and not (a.until and os.path.exists(a.until)):
            time.sleep(0.05)
    finally:
        rewrite(a.file, gpus, pid, None)


if __name__ == "__main__":
    main()
