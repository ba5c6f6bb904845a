"""Simulated GPUs (`TMUXTRAIN_GPUS=fake:...`), for demos, tests and machines without a GPU.

Two forms:

- `fake:NxSIZE`, e.g. `fake:4x24GiB`: N identical idle GPUs;
- `fake:PATH`: a YAML list, one mapping per GPU, re-read on every `probe()` so a test can
  "start another user's process" by editing `used`::

      - {name: Fake A100, memory: 80GiB}
      - {name: Fake A100, memory: 80GiB, used: 20GiB, utilization: 90, temperature: 40}

Nothing runs on a fake GPU, so the memory tmuxtrain's own jobs hold is handed in by the caller
(`held`: gpu index -> {job id: MiB}) and added to the file's `used`, as NVML would see it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from tmuxtrain.core.model import GpuInfo
from tmuxtrain.core.units import format_mib, parse_size_mib
from tmuxtrain.gpus import ACCEPTED_FORMS, GpuUnavailable

_COUNT_RE = re.compile(r"\s*(\d+)\s*[x×]\s*(.+?)\s*", re.IGNORECASE)
_FILE_KEYS = ("name", "memory", "used", "utilization", "temperature")
_EXAMPLE = "e.g. - {name: Fake A100, memory: 80GiB, used: 20GiB}"


@dataclass(frozen=True)
class FakeGpu:
    """One simulated GPU as configured: MiB, percent and degrees C (None: not simulated)."""

    name: str
    memory_mib: int
    used_mib: int = 0
    utilization_pct: int | None = None
    temperature_c: int | None = None


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

    def probe(self, held: dict[int, dict[int, int]] | None = None) -> list[GpuInfo]:
        """The simulated GPUs now, with `held` (gpu index -> {job id: MiB}) counted as used.

        Like `nvidia-smi` on a real GPU, used = the file's `used` (other users) + what jobs
        hold, and may exceed total when jobs over-commit. Raises GpuUnavailable when the file
        has never been readable and valid; a broken rewrite keeps the last good reading
        (and sets `last_error`).
        """
        gpus = self._read_file() if self.path is not None else self._last
        assert gpus is not None
        held = held or {}
        out = []
        for i, g in enumerate(gpus):
            jobs = dict(held.get(i, {}))
            out.append(
                GpuInfo(
                    index=i,
                    uuid=f"GPU-fake-{i}",
                    name=g.name,
                    memory_total_mib=g.memory_mib,
                    memory_used_mib=g.used_mib + sum(jobs.values()),
                    utilization_pct=g.utilization_pct,
                    temperature_c=g.temperature_c,
                    simulated=True,
                    job_used_mib=jobs,
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


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.lower().endswith((".yaml", ".yml", ".json"))


def _parse_fake_gpus(text: str) -> list[FakeGpu]:
    """The fake GPU file's text -> FakeGpus; raises _FileError(':LINE: problem')."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise _FileError(f"{where}: bad YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise _FileError(f": bad YAML: {e}") from None
    finally:
        loader.dispose()
    if data is None:
        raise _FileError(f": is empty: write a YAML list of GPUs, {_EXAMPLE}")
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise _FileError(f":{_line(root)}: must be a YAML list of GPUs, {_EXAMPLE}")
    return [
        _fake_gpu(item, node, k)
        for k, (item, node) in enumerate(zip(data, root.value, strict=True))
    ]


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _fake_gpu(item: Any, node: yaml.Node, k: int) -> FakeGpu:
    where = f":{_line(node)}: GPU {k}"
    if not isinstance(item, dict) or not isinstance(node, yaml.MappingNode):
        raise _FileError(f"{where}: must be a mapping, {_EXAMPLE}")
    lines = {
        key.value: _line(value) for key, value in node.value if isinstance(key, yaml.ScalarNode)
    }

    def fail(key: str, problem: str) -> _FileError:
        return _FileError(f":{lines.get(key, _line(node))}: GPU {k}: {key}: {problem}")

    for key in item:
        if key not in _FILE_KEYS:
            close = difflib.get_close_matches(str(key), _FILE_KEYS, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(_FILE_KEYS)})"
            )
            raise _FileError(f":{lines.get(key, _line(node))}: GPU {k}: unknown key {key!r}{hint}")
    for key in ("name", "memory"):
        if item.get(key) is None:
            raise _FileError(f"{where}: {key!r} is required, {_EXAMPLE}")

    name = item["name"]
    if isinstance(name, bool) or not isinstance(name, (str, int, float)) or not str(name).strip():
        raise fail("name", "must be a non-empty text")

    def size(key: str) -> int:
        value = item[key]
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
    if used > memory:
        raise fail("used", f"{format_mib(used)} is more than memory ({format_mib(memory)})")
    return FakeGpu(
        name=str(name),
        memory_mib=memory,
        used_mib=used,
        utilization_pct=number("utilization", 0, 100),
        temperature_c=number("temperature", -50, 150),
    )
