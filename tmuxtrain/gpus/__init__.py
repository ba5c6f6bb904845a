"""GPU probes: where the scheduler's GPU snapshots come from (`TMUXTRAIN_GPUS`).

`open_probe(spec)` turns the variable's value into a probe:

- unset / empty: NVML when it loads, else no GPUs with a note saying why and how to simulate;
- `nvml`: NVML, and `GpuUnavailable` when it cannot load (the user asked for it);
- `none`: no GPUs (CPU-only jobs still run);
- `fake:NxSIZE` (`fake:4x24GiB`) or `fake:PATH` (a YAML list of simulated GPUs).

Every probe has `kind` ("nvml", "fake", "none"), a one-line `note` for `tmuxtrain status`,
`probe(held=None) -> list[GpuInfo]` and `close()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.model import GpuInfo

ACCEPTED_FORMS = "nvml, none, fake:NxSIZE (e.g. fake:4x24GiB) or fake:PATH to a YAML file"
SIMULATE_HINT = "set TMUXTRAIN_GPUS=fake:2x24GiB to simulate"


class GpuUnavailable(TmuxtrainError):
    """The GPU source cannot be used at all (no driver, unreadable fake file); one-line message."""


class GpuProbe(Protocol):
    """What the daemon, api and `tmuxtrain gpus` need from a GPU source."""

    kind: str
    note: str

    def probe(
        self,
        held: dict[int, dict[int, int]] | None = None,
        owners: Callable[[], dict[int, int]] | None = None,
    ) -> list[GpuInfo]:
        """A snapshot of every GPU. `held`: gpu index -> {job id: MiB}, and `owners()`:
        pid -> job id (only fakes use them; real memory is attributed by gpus.credit)."""
        ...

    def close(self) -> None: ...


class NoGpuProbe:
    """No GPUs: `TMUXTRAIN_GPUS=none`, or the automatic fallback when NVML does not load."""

    kind = "none"

    def __init__(self, note: str = "TMUXTRAIN_GPUS=none: running without GPUs") -> None:
        self.note = note

    def probe(
        self,
        held: dict[int, dict[int, int]] | None = None,
        owners: Callable[[], dict[int, int]] | None = None,
    ) -> list[GpuInfo]:
        return []

    def close(self) -> None:
        pass


def open_probe(spec: str | None, base_dir: str | None = None) -> GpuProbe:
    """The probe `TMUXTRAIN_GPUS=spec` names; `base_dir` resolves a relative `fake:PATH` (else cwd).

    Raises ValueError for a spec of no accepted form, GpuUnavailable when `nvml` was asked
    for explicitly and cannot load.
    """
    text = (spec or "").strip()
    lowered = text.lower()
    if lowered in ("", "nvml"):
        try:
            # Imported here so pynvml only loads when NVML is wanted.
            from tmuxtrain.gpus import nvml

            return nvml.NvmlProbe()
        except ImportError as e:  # nvidia-ml-py missing: the same as no driver for `auto`
            if lowered == "nvml":
                raise GpuUnavailable(f"nvidia-ml-py is not installed: {e}") from e
            return NoGpuProbe(
                f"running without GPUs: nvidia-ml-py is not installed; {SIMULATE_HINT}"
            )
        except GpuUnavailable as e:
            if lowered == "nvml":
                raise
            return NoGpuProbe(f"running without GPUs: {e}; {SIMULATE_HINT}")
    if lowered == "none":
        return NoGpuProbe()
    if lowered.startswith("fake:"):
        from tmuxtrain.gpus.fake import FakeProbe

        return FakeProbe(text, base_dir=base_dir)
    raise ValueError(f"bad TMUXTRAIN_GPUS {text!r}: use {ACCEPTED_FORMS}")


__all__ = ["GpuProbe", "GpuUnavailable", "NoGpuProbe", "open_probe"]
