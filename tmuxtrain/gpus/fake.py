"""Simulated GPUs (`TMUXTRAIN_GPUS=fake:...`), for demos, tests and machines without a GPU.

Two forms:

- `fake:NxSIZE`, e.g. `fake:4x24GiB`: N identical idle GPUs;
- `fake:PATH`: a YAML list, one mapping per GPU, re-read on every `probe()` so a test can
  "start another user's process" by editing `used`, or a job "allocate" GPU memory by
  adding its own pid under `processes`::

      - {name: Fake A100, memory: 80GiB, nvlink: [1], pcie_switch: 0, cpu_socket: 0}
      - {name: Fake A100, memory: 80GiB, used: 20GiB, utilization: 90, temperature: 40}
      - {name: Fake A100, memory: 80GiB, processes: [{pid: 4711, memory: 12GiB}]}

  Topology, for placement (core.topology): `nvlink` lists a GPU's NVLink peers (either
  side may list a link), GPUs with the same `pcie_switch` label share a PCIe switch, and
  with the same `cpu_socket` label a CPU socket; different sockets are far apart.

Nothing runs on a fake GPU, so the memory tmuxtrain's own jobs hold is handed in by the caller
(`held`: gpu index -> {job id: MiB}) and added to the file's `used`, as NVML would see it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tmuxtrain.core.errors import SpecError
from tmuxtrain.core.model import GpuInfo
from tmuxtrain.core.topology import FAR, NVLINK, SOCKET, SWITCH
from tmuxtrain.core.units import format_mib, parse_size_mib
from tmuxtrain.core.validate import LDict, LList
from tmuxtrain.gpus import ACCEPTED_FORMS, GpuUnavailable
from tmuxtrain.jobfile import load_text

_COUNT_RE = re.compile(r"\s*(\d+)\s*[x×]\s*(.+?)\s*", re.IGNORECASE)
_FILE_KEYS = (
    "name",
    "memory",
    "used",
    "utilization",
    "temperature",
    "nvlink",
    "processes",
    "pcie_switch",
    "cpu_socket",
)
_EXAMPLE = "e.g. - {name: Fake A100, memory: 80GiB, used: 20GiB}"


@dataclass(frozen=True)
class FakeGpu:
    """One simulated GPU as configured: MiB, percent and degrees C (None: not simulated)."""

    name: str
    memory_mib: int
    used_mib: int = 0
    utilization_pct: int | None = None
    temperature_c: int | None = None
    nvlink: tuple[int, ...] = ()
    processes: tuple[tuple[int, int], ...] = ()  # (pid, MiB) held outside the declarations
    pcie_switch: str | None = None  # GPUs with one label share a PCIe switch
    cpu_socket: str | None = None  # GPUs with one label share a CPU socket


class _FileError(Exception):
    """A problem with the fake GPU file; the message names the line where there is one."""


class FakeProbe:
    """Simulated GPUs from `spec` (`fake:4x24GiB`, `4x24GiB`, `fake:gpus.yaml`, `gpus.yaml`).

    A relative path is resolved against `base_dir` (else the current directory) once, here.
    Raises ValueError for a malformed NxSIZE. A file is only read by `probe()`.
    """

    kind = "fake"

    def __init__(self, spec: str, base_dir: str | None = None) -> None:
        text = spec.strip()
        if text[:5].lower() == "fake:":
            text = text[5:].strip()
        if not text:
            raise ValueError(f"bad TMUXTRAIN_GPUS {spec!r}: use {ACCEPTED_FORMS}")
        path = os.path.join(base_dir or os.getcwd(), os.path.expanduser(text))
        self.path: str | None = None
        self._last: list[FakeGpu] | None = None
        # Why the latest file reading failed while an older good one is served; None when fine.
        self.last_error: str | None = None
        m = _COUNT_RE.fullmatch(text)
        if m and not _looks_like_path(text) and not os.path.exists(path):
            count = int(m.group(1))
            try:
                size = parse_size_mib(m.group(2))
            except ValueError as e:
                raise ValueError(f"bad TMUXTRAIN_GPUS {spec!r}: {e}") from None
            if count < 1 or size < 1:
                raise ValueError(
                    f"bad TMUXTRAIN_GPUS {spec!r}: need at least 1 GPU of at least 1 MiB"
                )
            self._last = [FakeGpu("Fake GPU", size)] * count
            self.note = f"simulated GPUs: {count} x {format_mib(size)} (TMUXTRAIN_GPUS=fake:{text})"
        else:
            self.path = os.path.abspath(path)
            self.note = f"simulated GPUs from {self.path}"

    def close(self) -> None:
        pass

    def probe(
        self,
        held: dict[int, dict[int, int]] | None = None,
        owners: Callable[[], dict[int, int]] | None = None,
    ) -> list[GpuInfo]:
        """The simulated GPUs now, with `held` (gpu index -> {job id: MiB}) counted as used.

        Like `nvidia-smi` on a real GPU, used = the file's `used` (other users) + the
        memory of the processes it lists + what jobs hold, and may exceed total when jobs
        over-commit. A listed process that `owners()` (pid -> job id) gives to a job is
        that job's memory, instead of what it declared, as NVML's per-process memory would
        be; the others are processes outside tmuxtrain. Raises GpuUnavailable when the file
        has never been readable and valid; a broken rewrite keeps the last good reading
        (and sets `last_error`).
        """
        gpus = self._read_file() if self.path is not None else self._last
        assert gpus is not None
        held = held or {}
        pid_jobs = owners() if owners is not None and any(g.processes for g in gpus) else {}
        links = _links(gpus)
        out = []
        for i, g in enumerate(gpus):
            jobs = dict(held.get(i, {}))
            observed: dict[int, int] = {}
            others = []
            for pid, mib in g.processes:
                job = pid_jobs.get(pid)
                if job is None:
                    others.append((pid, "", mib))
                else:
                    observed[job] = observed.get(job, 0) + mib
            jobs.update(observed)
            out.append(
                GpuInfo(
                    index=i,
                    uuid=f"GPU-fake-{i}",
                    name=g.name,
                    memory_total_mib=g.memory_mib,
                    memory_used_mib=g.used_mib + sum(m for *_, m in others) + sum(jobs.values()),
                    utilization_pct=g.utilization_pct,
                    temperature_c=g.temperature_c,
                    simulated=True,
                    processes=tuple((pid, mib) for pid, mib in g.processes),
                    job_used_mib=jobs,
                    others=tuple(others),
                    nvlink=g.nvlink,
                    links=links[i],
                    unmeasured=frozenset(jobs.keys() - observed.keys()),
                )
            )
        return out

    def _read_file(self) -> list[FakeGpu]:
        assert self.path is not None
        try:
            try:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise _FileError(f": cannot read it: {getattr(e, 'strerror', None) or e}") from e
            gpus = _parse_fake_gpus(text)
        except _FileError as e:
            self.last_error = f"fake GPU file {self.path}{e}"
            if self._last is None:
                raise GpuUnavailable(self.last_error) from None
            return self._last  # a half-written rewrite: keep serving the last good reading
        self._last = gpus
        self.last_error = None
        return gpus


def _links(gpus: list[FakeGpu]) -> list[tuple[tuple[int, int], ...]]:
    """Each GPU's (peer, topology tier) from `nvlink`, `pcie_switch` and `cpu_socket`;
    a pair nothing is said about is left out (unknown)."""
    out: list[list[tuple[int, int]]] = [[] for _ in gpus]
    if not any(g.nvlink or g.pcie_switch is not None or g.cpu_socket is not None for g in gpus):
        return [()] * len(gpus)
    for i, a in enumerate(gpus):
        for j, b in enumerate(gpus):
            if i == j:
                continue
            if j in a.nvlink or i in b.nvlink:
                t = NVLINK
            elif a.pcie_switch is not None and a.pcie_switch == b.pcie_switch:
                t = SWITCH
            elif a.cpu_socket is not None and b.cpu_socket is not None:
                t = SOCKET if a.cpu_socket == b.cpu_socket else FAR
            else:
                continue
            out[i].append((j, t))
    return [tuple(x) for x in out]


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.lower().endswith((".yaml", ".yml", ".json"))


def _parse_fake_gpus(text: str) -> list[FakeGpu]:
    """The fake GPU file's text -> FakeGpus; raises _FileError(':LINE: problem'). Read
    with the job files' YAML loader, which remembers the line of every key and item."""
    try:
        data = load_text(text, "")
    except SpecError as e:
        where = f":{e.line}" if e.line else ":"
        raise _FileError(f"{where}: bad YAML: {e.message.removeprefix('invalid YAML: ')}") from None
    if data is None:
        raise _FileError(f": is empty: write a YAML list of GPUs, {_EXAMPLE}")
    if not isinstance(data, LList):
        raise _FileError(f":{getattr(data, 'line', 1)}: must be a YAML list of GPUs, {_EXAMPLE}")
    gpus = [_fake_gpu(item, data.item_lines[k] or 1, k) for k, item in enumerate(data)]
    for k, g in enumerate(gpus):
        for peer in g.nvlink:
            if peer == k or peer >= len(gpus):
                item = data[k]
                line = item.line_of("nvlink") or data.item_lines[k] or 1
                what = "is this GPU itself" if peer == k else f"names no GPU ({len(gpus)} listed)"
                raise _FileError(f":{line}: GPU {k}: nvlink: {peer} {what}")
    return gpus


def _fake_gpu(item: Any, line: int, k: int) -> FakeGpu:
    where = f":{line}: GPU {k}"
    if not isinstance(item, LDict):
        raise _FileError(f"{where}: must be a mapping, {_EXAMPLE}")

    def fail(key: str, problem: str) -> _FileError:
        return _FileError(f":{item.line_of(key) or line}: GPU {k}: {key}: {problem}")

    for key in item:
        if key not in _FILE_KEYS:
            close = difflib.get_close_matches(str(key), _FILE_KEYS, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(_FILE_KEYS)})"
            )
            raise _FileError(f":{item.line_of(key) or line}: GPU {k}: unknown key {key!r}{hint}")
    for key in ("name", "memory"):
        if item.get(key) is None:
            raise _FileError(f"{where}: {key!r} is required, {_EXAMPLE}")

    name = item["name"]
    if isinstance(name, bool) or not isinstance(name, (str, int, float)) or not str(name).strip():
        raise fail("name", "must be a non-empty text")

    def size(key: str, value: Any = None) -> int:
        value = item[key] if value is None else value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(key, f"bad size {value!r}: use e.g. 20GiB")
        try:
            return parse_size_mib(value)
        except ValueError as e:
            raise fail(key, str(e)) from None

    def number(key: str, low: float, high: float) -> int | None:
        value = item.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low <= value <= high
        ):
            raise fail(key, f"must be a number from {low:g} to {high:g}, not {value!r}")
        return round(value)

    memory = size("memory")
    if memory < 1:
        raise fail("memory", "must be at least 1 MiB")
    used = size("used") if item.get("used") is not None else 0
    processes = _processes(item, fail, size)
    if used + sum(m for _, m in processes) > memory:
        raise fail("used", f"{format_mib(used)} is more than memory ({format_mib(memory)})")
    nvlink = item.get("nvlink") or []
    if not isinstance(nvlink, list) or any(
        isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in nvlink
    ):
        raise fail("nvlink", "expected a list of GPU indices, e.g. [1, 2]")
    labels = {}
    for key in ("pcie_switch", "cpu_socket"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
            raise fail(key, f"expected a label (a number or a name), not {value!r}")
        labels[key] = None if value is None else str(value)
    return FakeGpu(
        name=str(name),
        memory_mib=memory,
        used_mib=used,
        utilization_pct=number("utilization", 0, 100),
        temperature_c=number("temperature", -50, 150),
        nvlink=tuple(nvlink),
        processes=processes,
        **labels,
    )


def _processes(
    item: LDict, fail: Callable[[str, str], Exception], size: Callable[[str, Any], int]
) -> tuple[tuple[int, int], ...]:
    """`processes: [{pid: PID, memory: SIZE}]`: GPU memory held by these pids (a test job
    adds its own pid, as a real job's CUDA context would show in NVML)."""
    value = item.get("processes") or []
    if not isinstance(value, list):
        raise fail("processes", "expected a list of {pid: PID, memory: SIZE}")
    out = []
    for p in value:
        if not isinstance(p, dict) or set(p) - {"pid", "memory"} or "pid" not in p:
            raise fail("processes", "each is {pid: PID, memory: SIZE}")
        pid = p["pid"]
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise fail("processes", f"pid must be a positive integer, not {pid!r}")
        out.append((pid, size("processes", p.get("memory", 0)) if p.get("memory") else 0))
    return tuple(out)
