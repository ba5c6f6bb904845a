"""Real GPUs through NVML (nvidia-ml-py), the library `nvidia-smi` itself reads.

One funnel: every NVML call goes through this module, and a failed reading of one field
(NotSupported, GpuIsLost, Unknown...) becomes None in that field instead of an exception that
escapes the scheduler loop (as nvitop's `nvmlQuery(..., default=NA)` and gpustat's `safenvml`
do). Only "NVML is not there at all" raises, as `GpuUnavailable`.

Order of `probe()`'s list: every NVML device at its NVML index (0..count-1, the numbering
`CUDA_VISIBLE_DEVICES` uses under `CUDA_DEVICE_ORDER=PCI_BUS_ID`), then the MIG devices of
MIG-enabled GPUs, indexed on from `count`. A GPU in MIG mode keeps its own slot so later GPUs
keep their NVML index, but with unknown memory, so the allocator (which treats unknown as not
free) never hands it out whole; jobs get its MIG devices instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import pynvml

from tmuxtrain.core.model import GpuInfo
from tmuxtrain.core.topology import FAR, NVLINK, SOCKET, SWITCH
from tmuxtrain.gpus import GpuUnavailable

T = TypeVar("T")

# Old nvidia-ml-py has no NVMLLibraryMismatchError (raised by unversioned calls such as
# nvmlDeviceGetComputeRunningProcesses when the driver lacks the _v3 symbol).
_NVML_ERRORS: tuple[type[Exception], ...] = tuple(
    e for e in (pynvml.NVMLError, getattr(pynvml, "NVMLLibraryMismatchError", None)) if e
)

# usedGpuMemory is NVML_VALUE_NOT_AVAILABLE (2**64 - 1) where the driver cannot tell (WDDM,
# some containers); newer nvidia-ml-py turns it into None, older hands the raw number over.
_NOT_AVAILABLE_FLOOR = 2**63

_MIG_ENABLE: int = getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1)

# nvmlDeviceGetTopologyCommonAncestor's levels -> core.topology tiers (`nvidia-smi topo -m`:
# INTERNAL one board, SINGLE = PIX, MULTIPLE = PXB, HOSTBRIDGE = PHB, NODE, SYSTEM = SYS).
_TIERS = {0: SWITCH, 10: SWITCH, 20: SOCKET, 30: SOCKET, 40: SOCKET, 50: FAR}
_P2P_NVLINK: int = getattr(pynvml, "NVML_P2P_CAPS_INDEX_NVLINK", 2)
_P2P_OK: int = getattr(pynvml, "NVML_P2P_STATUS_OK", 0)


def _query(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """fn(*args) or None when NVML says no: one unreadable field never fails a whole probe."""
    try:
        return fn(*args, **kwargs)
    except _NVML_ERRORS:
        return None


def _mib(nbytes: int | None) -> int | None:
    if nbytes is None or nbytes >= _NOT_AVAILABLE_FLOOR:
        return None
    return int(nbytes) // 2**20


def _text(value: str | bytes | None) -> str | None:
    # nvidia-ml-py < 11.515 returns bytes for names and UUIDs, newer returns str.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _init_message(e: Exception) -> str:
    """One line for `tmuxtrain status`: what NVML said, and the usual reason for it."""
    if isinstance(e, pynvml.NVMLError_LibraryNotFound):
        return f"NVML could not load (no NVIDIA driver?): {e}"
    if isinstance(e, pynvml.NVMLError_DriverNotLoaded):
        return f"the NVIDIA kernel driver is not loaded: {e}"
    if isinstance(e, pynvml.NVMLError_LibRmVersionMismatch):
        return f"NVML and the NVIDIA kernel driver differ (reboot after a driver update?): {e}"
    if isinstance(e, pynvml.NVMLError_NoPermission):
        return f"no permission to use NVML: {e}"
    return f"NVML could not start: {e}"


class NvmlProbe:
    """Snapshots of the real GPUs; one per scheduler, closed with `close()` (nvmlShutdown).

    Raises GpuUnavailable when NVML cannot start or cannot count the GPUs
    (`nvidia-smi -L` failing). Usable as a context manager.
    """

    kind = "nvml"

    def __init__(self) -> None:
        self._open = False
        # nvmlDeviceGetMemoryInfo_v2 (driver >= 510) reports `used` without the memory the
        # driver reserves; None once the driver has shown it lacks it.
        self._memory_v2: int | None = getattr(pynvml, "nvmlMemory_v2", None)
        try:
            pynvml.nvmlInit()
        except _NVML_ERRORS as e:
            raise GpuUnavailable(_init_message(e)) from e
        self._open = True
        # Links between GPUs never change while the machine runs: read once per GPU set.
        self._topology: tuple[tuple[str, ...], list[tuple[tuple[int, int], ...]]] | None = None
        try:
            count = pynvml.nvmlDeviceGetCount()
        except _NVML_ERRORS as e:
            self.close()
            raise GpuUnavailable(f"NVML cannot count the GPUs: {e}") from e
        driver = _text(_query(pynvml.nvmlSystemGetDriverVersion)) or "unknown"
        self.note = f"NVML: {count} GPU{'' if count == 1 else 's'}, driver {driver}"

    def __enter__(self) -> NvmlProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """nvmlShutdown, once; later `probe()` calls raise GpuUnavailable."""
        if self._open:
            self._open = False
            _query(pynvml.nvmlShutdown)

    def probe(
        self,
        held: dict[int, dict[int, int]] | None = None,
        owners: Callable[[], dict[int, int]] | None = None,
    ) -> list[GpuInfo]:
        """Every GPU and MIG device now (`nvidia-smi --query-gpu=index,uuid,name,memory.total,
        memory.used,utilization.gpu,temperature.gpu` plus `--query-compute-apps=pid,used_memory`).

        `held` and `owners` are accepted for the probe interface and ignored: NVML fills
        `processes`, and attributing them to jobs (by pid) happens in `gpus.credit`.
        Raises GpuUnavailable only when the GPUs cannot even be counted (driver gone).
        """
        if not self._open:
            raise GpuUnavailable("the NVML probe is closed")
        try:
            count = pynvml.nvmlDeviceGetCount()
        except _NVML_ERRORS as e:
            raise GpuUnavailable(f"NVML cannot count the GPUs: {e}") from e
        devices: list[GpuInfo] = []
        migs: list[GpuInfo] = []
        for i in range(count):
            device, its_migs = self._device(i)
            devices.append(device)
            migs.extend(its_migs)
        devices = self._with_links(devices)
        return devices + [replace(m, index=count + j) for j, m in enumerate(migs)]

    def _with_links(self, devices: list[GpuInfo]) -> list[GpuInfo]:
        """The GPUs with their links to each other (`nvidia-smi topo -m`), read once."""
        if len(devices) < 2:
            return devices
        key = tuple(d.uuid for d in devices)
        if self._topology is None or self._topology[0] != key:
            self._topology = (key, _links(devices))
        links = self._topology[1]
        return [
            replace(d, links=ls, nvlink=tuple(p for p, t in ls if t == NVLINK))
            for d, ls in zip(devices, links, strict=True)
        ]

    def _device(self, i: int) -> tuple[GpuInfo, list[GpuInfo]]:
        """GPU `i`, and its MIG devices (indices not yet assigned) when it is in MIG mode."""
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        except _NVML_ERRORS as e:
            # Keep the slot (later GPUs keep their index) with nothing known: never allocated.
            return GpuInfo(i, "", f"unknown GPU ({e})", None, None), []
        name = _text(_query(pynvml.nvmlDeviceGetName, handle)) or "unknown GPU"
        uuid = _text(_query(pynvml.nvmlDeviceGetUUID, handle)) or ""
        temperature = _query(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
        mig_handles = self._mig_handles(handle)
        if mig_handles is not None:
            parent = GpuInfo(
                index=i,
                uuid=uuid,
                name=f"{name} (MIG mode: jobs use its MIG devices)",
                memory_total_mib=None,
                memory_used_mib=None,
                temperature_c=temperature,
            )
            return parent, [self._mig_device(h, name, temperature) for h in mig_handles]
        total, used = self._memory(handle)
        return (
            GpuInfo(
                index=i,
                uuid=uuid,
                name=name,
                memory_total_mib=total,
                memory_used_mib=used,
                utilization_pct=self._utilization(handle),
                temperature_c=temperature,
                processes=self._processes(handle),
            ),
            [],
        )

    def _mig_handles(self, handle: Any) -> list[Any] | None:
        """The MIG device handles of a GPU in MIG mode, or None for a plain GPU.

        `nvidia-smi --query-gpu=mig.mode.current`; a GPU that does not support MIG (the
        query raises NotSupported) is a plain GPU.
        """
        mode = _query(pynvml.nvmlDeviceGetMigMode, handle)
        if not mode or mode[0] != _MIG_ENABLE:
            return None
        handles = []
        for k in range(_query(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            # Unused slots answer NotFound (or InvalidArgument on some drivers): skip them.
            h = _query(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, k)
            if h is not None:
                handles.append(h)
        return handles

    def _mig_device(self, h: Any, parent_name: str, parent_temperature: int | None) -> GpuInfo:
        """One MIG device (`nvidia-smi -L`'s "MIG 1g.10gb Device 0"); index set by the caller.

        Its uuid is `MIG-...`, the form CUDA_VISIBLE_DEVICES takes for MIG devices.
        Utilisation is not reported per MIG device (NotSupported -> None); temperature is
        the parent GPU's.
        """
        total, used = self._memory(h)
        temperature = _query(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
        return GpuInfo(
            index=-1,
            uuid=_text(_query(pynvml.nvmlDeviceGetUUID, h)) or "",
            name=self._mig_name(h, parent_name),
            memory_total_mib=total,
            memory_used_mib=used,
            utilization_pct=self._utilization(h),
            temperature_c=temperature if temperature is not None else parent_temperature,
            processes=self._processes(h),
        )

    def _mig_name(self, h: Any, parent_name: str) -> str:
        # Recent drivers name MIG devices "NVIDIA A100-SXM4-80GB MIG 1g.10gb"; otherwise build
        # the profile name from the slice count and memory (profiles round the GiB up).
        name = _text(_query(pynvml.nvmlDeviceGetName, h))
        if name and "MIG" in name:
            return name
        attrs = _query(pynvml.nvmlDeviceGetAttributes, h)
        if attrs is not None:
            gib = math.ceil(attrs.memorySizeMB / 1024)
            return f"{parent_name} MIG {attrs.gpuInstanceSliceCount}g.{gib}gb"
        return f"{parent_name} MIG"

    def _memory(self, handle: Any) -> tuple[int | None, int | None]:
        """(total, used) MiB such that total - used is what can still be allocated.

        With v2 (`nvidia-smi --query-gpu=memory.total,memory.reserved,memory.used`) total is
        memory.total minus memory.reserved: the reserved part can never be allocated, and
        leaving it in total would overstate free memory by that much. v1 (older drivers)
        counts reserved in used, which gives the same free memory.
        """
        if self._memory_v2 is not None:
            try:
                m = pynvml.nvmlDeviceGetMemoryInfo(handle, version=self._memory_v2)
            except pynvml.NVMLError_FunctionNotFound:
                self._memory_v2 = None  # the driver predates v2: stop asking
            except _NVML_ERRORS:
                pass  # e.g. NotSupported on this device only: try v1 below
            else:
                total, reserved, used = _mib(m.total), _mib(m.reserved), _mib(m.used)
                if total is not None and reserved is not None:
                    total -= reserved
                return total, used
        m1 = _query(pynvml.nvmlDeviceGetMemoryInfo, handle)
        if m1 is None:
            return None, None
        return _mib(m1.total), _mib(m1.used)

    def _utilization(self, handle: Any) -> int | None:
        """`nvidia-smi --query-gpu=utilization.gpu`, percent over the last sample period."""
        rates = _query(pynvml.nvmlDeviceGetUtilizationRates, handle)
        return None if rates is None else int(rates.gpu)

    def _processes(self, handle: Any) -> tuple[tuple[int, int | None], ...]:
        """(pid, MiB or None) of compute and graphics processes, by pid; () when unknown.

        `nvidia-smi --query-compute-apps=pid,used_memory`. A pid in both lists is counted once.
        """
        found: dict[int, int | None] = {}
        for fn_name in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            for p in _running_processes(fn_name, handle) or ():
                pid = int(p.pid)
                used = _mib(getattr(p, "usedGpuMemory", None))
                old = found.get(pid)
                found[pid] = used if old is None else max(old, used or 0)
        return tuple(sorted(found.items()))


def _links(devices: list[GpuInfo]) -> list[tuple[tuple[int, int], ...]]:
    """Each plain GPU's (peer, tier): NVLink where peer-to-peer over NVLink is possible
    (`nvmlDeviceGetP2PStatus`), else the PCIe tier from their closest common ancestor
    (`nvmlDeviceGetTopologyCommonAncestor`). A pair NVML cannot tell about (NotSupported
    on some boards, a lost GPU) is left out, which placement counts as far apart. GPUs in
    MIG mode or unreadable ones (memory unknown) get no links: they are never placed."""
    handles: dict[int, Any] = {}
    for d in devices:
        if d.memory_total_mib is not None:
            h = _query(pynvml.nvmlDeviceGetHandleByIndex, d.index)
            if h is not None:
                handles[d.index] = h
    out: dict[int, list[tuple[int, int]]] = {d.index: [] for d in devices}
    order = sorted(handles)
    for k, a in enumerate(order):
        for b in order[k + 1 :]:
            t = _tier(handles[a], handles[b])
            if t is not None:
                out[a].append((b, t))
                out[b].append((a, t))
    return [tuple(sorted(out[d.index])) for d in devices]


def _tier(a: Any, b: Any) -> int | None:
    if _query(pynvml.nvmlDeviceGetP2PStatus, a, b, _P2P_NVLINK) == _P2P_OK:
        return NVLINK
    level = _query(pynvml.nvmlDeviceGetTopologyCommonAncestor, a, b)
    return None if level is None else _TIERS.get(int(level), FAR)


def _running_processes(fn_name: str, handle: Any) -> list[Any] | None:
    """The process list, falling back to the _v2 call where the driver lacks _v3."""
    fn = getattr(pynvml, fn_name, None)
    if fn is None:
        return None
    try:
        return list(fn(handle))
    except pynvml.NVMLError:
        return None
    except _NVML_ERRORS:  # NVMLLibraryMismatchError: this driver has no _v3 symbol
        fallback = getattr(pynvml, f"{fn_name}_v2", None)
        return None if fallback is None else _query(lambda: list(fallback(handle)))
