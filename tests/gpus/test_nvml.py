"""The NVML probe against a simulated NVML, replaced at the pynvml boundary.

The replacement functions raise what real NVML raises (`pynvml.NVMLError(code)`, which
nvidia-ml-py turns into the matching subclass), so the probe's handling of NotSupported,
GpuIsLost, MIG and old drivers is tested here without a GPU. The real library runs in the
last tests: on a machine without a driver, and (opt-in, `-m gpu`) on a real GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from tmuxtrain.core.allocate import allocate, cuda_visible_devices
from tmuxtrain.core.model import Holding, Request
from tmuxtrain.core.topology import FAR, NVLINK, SOCKET, SWITCH
from tmuxtrain.gpus import GpuUnavailable, open_probe
from tmuxtrain.gpus.nvml import NvmlProbe

MIB = 2**20
GIB = 2**30
NOT_AVAILABLE = 2**64 - 1  # NVML_VALUE_NOT_AVAILABLE for unsigned long long


def err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
UNKNOWN = pynvml.NVML_ERROR_UNKNOWN
NOT_FOUND = pynvml.NVML_ERROR_NOT_FOUND
INVALID_ARGUMENT = pynvml.NVML_ERROR_INVALID_ARGUMENT
FUNCTION_NOT_FOUND = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND


@dataclass
class Dev:
    """One simulated NVML device (or MIG device); it is its own handle."""

    name: str | bytes = "NVIDIA A100-SXM4-80GB"
    uuid: str | bytes = "GPU-00000000-0000-0000-0000-000000000000"
    total: int = 80 * GIB
    reserved: int = 512 * MIB
    used: int = 0
    util: int = 0
    temp: int = 35
    compute: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    mig: list[Dev | int] | None = None  # MIG slots: a device, or the error code of that slot
    slices: int = 1
    # NVML function name (or "memory_v2") -> error code it raises for this device.
    errors: dict[str, int] = field(default_factory=dict)

    def check(self, fn: str) -> None:
        if fn in self.errors:
            raise err(self.errors[fn])


class FakeNvml:
    """Installs replacements for the pynvml functions the probe calls; counts the calls."""

    def __init__(self, devices: list[Dev], monkeypatch: pytest.MonkeyPatch) -> None:
        self.devices = devices
        self.init_error: Exception | None = None
        self.count_error: int | None = None
        self.v2_exists = True  # the driver has nvmlDeviceGetMemoryInfo_v2
        self.unversioned_process_calls_mismatch = False  # driver without the _v3 symbols
        self.calls: dict[str, int] = {}
        # Topology, by pair of device positions: NVML's common-ancestor level (a pair not
        # here answers NotSupported, as on boards that cannot tell) and the NVLinked pairs.
        self.levels: dict[frozenset[int], int] = {}
        self.nvlinks: set[frozenset[int]] = set()
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlDeviceGetCount",
            "nvmlSystemGetDriverVersion",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetTemperature",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
            "nvmlDeviceGetComputeRunningProcesses_v2",
            "nvmlDeviceGetGraphicsRunningProcesses_v2",
            "nvmlDeviceGetMigMode",
            "nvmlDeviceGetMaxMigDeviceCount",
            "nvmlDeviceGetMigDeviceHandleByIndex",
            "nvmlDeviceGetAttributes",
            "nvmlDeviceGetTopologyCommonAncestor",
            "nvmlDeviceGetP2PStatus",
        ):
            assert hasattr(pynvml, name), name  # the real library has what we replace
            monkeypatch.setattr(pynvml, name, self._counted(name, getattr(self, name)))

    def _counted(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args, **kwargs)

        return wrapper

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error is not None:
            raise err(self.count_error)
        return len(self.devices)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Dev:
        if not 0 <= i < len(self.devices):
            raise err(INVALID_ARGUMENT)
        dev = self.devices[i]
        dev.check("nvmlDeviceGetHandleByIndex")
        return dev

    def nvmlDeviceGetName(self, h: Dev) -> str | bytes:
        h.check("nvmlDeviceGetName")
        return h.name

    def nvmlDeviceGetUUID(self, h: Dev) -> str | bytes:
        h.check("nvmlDeviceGetUUID")
        return h.uuid

    def nvmlDeviceGetTemperature(self, h: Dev, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        h.check("nvmlDeviceGetTemperature")
        return h.temp

    def nvmlDeviceGetMemoryInfo(self, h: Dev, version: int | None = None) -> SimpleNamespace:
        if version:
            assert version == pynvml.nvmlMemory_v2
            if not self.v2_exists:
                raise err(FUNCTION_NOT_FOUND)
            h.check("memory_v2")
            h.check("nvmlDeviceGetMemoryInfo")
            free = h.total - h.reserved - h.used
            return SimpleNamespace(total=h.total, reserved=h.reserved, free=free, used=h.used)
        h.check("nvmlDeviceGetMemoryInfo")
        # v1 counts the reserved memory as used.
        return SimpleNamespace(
            total=h.total, free=h.total - h.reserved - h.used, used=h.reserved + h.used
        )

    def nvmlDeviceGetUtilizationRates(self, h: Dev) -> SimpleNamespace:
        h.check("nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=h.util, memory=0)

    def _procs(self, rows: list[tuple[int, int | None]]) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in rows]

    def nvmlDeviceGetComputeRunningProcesses(self, h: Dev) -> list[SimpleNamespace]:
        if self.unversioned_process_calls_mismatch:
            raise pynvml.NVMLLibraryMismatchError("Unversioned function called ...")
        h.check("nvmlDeviceGetComputeRunningProcesses")
        return self._procs(h.compute)

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: Dev) -> list[SimpleNamespace]:
        if self.unversioned_process_calls_mismatch:
            raise pynvml.NVMLLibraryMismatchError("Unversioned function called ...")
        h.check("nvmlDeviceGetGraphicsRunningProcesses")
        return self._procs(h.graphics)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: Dev) -> list[SimpleNamespace]:
        return self._procs(h.compute)

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, h: Dev) -> list[SimpleNamespace]:
        return self._procs(h.graphics)

    def nvmlDeviceGetMigMode(self, h: Dev) -> list[int]:
        h.check("nvmlDeviceGetMigMode")
        if h.mig is None:
            return [0, 0]
        return [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Dev) -> int:
        h.check("nvmlDeviceGetMaxMigDeviceCount")
        return len(h.mig or [])

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Dev, k: int) -> Dev:
        slots = h.mig or []
        if not 0 <= k < len(slots):
            raise err(INVALID_ARGUMENT)
        slot = slots[k]
        if isinstance(slot, int):
            raise err(slot)
        return slot

    def nvmlDeviceGetAttributes(self, h: Dev) -> SimpleNamespace:
        h.check("nvmlDeviceGetAttributes")
        return SimpleNamespace(
            gpuInstanceSliceCount=h.slices, memorySizeMB=(h.total - h.reserved) // MIB
        )

    def _pair(self, a: Dev, b: Dev) -> frozenset[int]:
        return frozenset(i for i, d in enumerate(self.devices) if d is a or d is b)

    def nvmlDeviceGetTopologyCommonAncestor(self, a: Dev, b: Dev) -> int:
        a.check("nvmlDeviceGetTopologyCommonAncestor")
        b.check("nvmlDeviceGetTopologyCommonAncestor")
        level = self.levels.get(self._pair(a, b))
        if level is None:
            raise err(NOT_SUPPORTED)
        return level

    def nvmlDeviceGetP2PStatus(self, a: Dev, b: Dev, index: int) -> int:
        assert index == pynvml.NVML_P2P_CAPS_INDEX_NVLINK
        a.check("nvmlDeviceGetP2PStatus")
        b.check("nvmlDeviceGetP2PStatus")
        if self._pair(a, b) in self.nvlinks:
            return int(pynvml.NVML_P2P_STATUS_OK)
        return int(pynvml.NVML_P2P_STATUS_NOT_SUPPORTED)


def install(monkeypatch: pytest.MonkeyPatch, *devices: Dev) -> FakeNvml:
    return FakeNvml(list(devices), monkeypatch)


def uuid(n: int, prefix: str = "GPU") -> str:
    return f"{prefix}-{n:08x}-0000-0000-0000-000000000000"


# -- nvidia-ml-py itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVMLError_NotSupported),
        (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVMLError_GpuIsLost),
        (pynvml.NVML_ERROR_UNKNOWN, pynvml.NVMLError_Unknown),
        (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVMLError_NotFound),
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVMLError_LibraryNotFound),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, pynvml.NVMLError_DriverNotLoaded),
    ],
)
def test_nvml_error_codes_become_subclasses(code: int, cls: type) -> None:
    # What the replacements above rely on: NVMLError(code) is the specific subclass.
    e = pynvml.NVMLError(code)
    assert type(e) is cls
    assert isinstance(e, pynvml.NVMLError)
    assert e.value == code
    assert cls().value == code


# -- start-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (pynvml.NVMLError_LibraryNotFound(), "NVML could not load (no NVIDIA driver?)"),
        (err(pynvml.NVML_ERROR_DRIVER_NOT_LOADED), "kernel driver is not loaded"),
        (err(pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH), "reboot after a driver update?"),
        (err(pynvml.NVML_ERROR_NO_PERMISSION), "no permission"),
        (err(UNKNOWN), "NVML could not start: Unknown Error"),
    ],
)
def test_init_failure_is_gpu_unavailable(
    monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    nvml = install(monkeypatch, Dev())
    nvml.init_error = error
    with pytest.raises(GpuUnavailable) as info:
        NvmlProbe()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_auto_falls_back_to_no_gpus_but_explicit_nvml_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvml = install(monkeypatch, Dev())
    nvml.init_error = pynvml.NVMLError_LibraryNotFound()
    for spec in (None, "", "  "):
        probe = open_probe(spec)
        assert probe.kind == "none"
        assert probe.probe() == []
        assert "no NVIDIA driver" in probe.note
        assert "TMUXTRAIN_GPUS=fake:2x24GiB" in probe.note
    with pytest.raises(GpuUnavailable, match="no NVIDIA driver"):
        open_probe("nvml")
    with pytest.raises(GpuUnavailable):
        open_probe(" NVML ")


def test_count_failure_is_gpu_unavailable_and_shuts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = install(monkeypatch, Dev())
    nvml.count_error = UNKNOWN
    with pytest.raises(GpuUnavailable, match="cannot count the GPUs: Unknown Error"):
        NvmlProbe()
    assert nvml.calls["nvmlShutdown"] == 1
    assert open_probe(None).kind == "none"


def test_open_probe_gives_nvml_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, Dev(), Dev(uuid=uuid(1)))
    for spec in (None, "nvml"):
        probe = open_probe(spec)
        assert probe.kind == "nvml"
        assert probe.note == "NVML: 2 GPUs, driver 550.54.15"
        assert len(probe.probe()) == 2
        probe.close()


# -- readings ---------------------------------------------------------------------------------


def test_plain_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        Dev(
            uuid=uuid(0),
            used=20 * GIB,
            util=87,
            temp=61,
            compute=[(4242, 19 * GIB), (4300, None), (4301, NOT_AVAILABLE)],
            graphics=[(4242, 19 * GIB), (1234, 100 * MIB)],  # 4242 in both: counted once
        ),
        Dev(name=b"NVIDIA GeForce RTX 4090", uuid=uuid(1).encode(), total=24 * GIB),
    )
    with NvmlProbe() as probe:
        a, b = probe.probe(held={0: {7: 1024}})
    assert (a.index, a.uuid, a.name) == (0, uuid(0), "NVIDIA A100-SXM4-80GB")
    # v2: total less reserved, used without reserved, so total - used is what is free.
    assert a.memory_total_mib == 80 * 1024 - 512
    assert a.memory_used_mib == 20 * 1024
    assert (a.utilization_pct, a.temperature_c) == (87, 61)
    assert a.processes == ((1234, 100), (4242, 19 * 1024), (4300, None), (4301, None))
    assert a.job_used_mib == {}  # held is for fakes; pids are attributed elsewhere
    assert not a.simulated
    # Old nvidia-ml-py hands names and UUIDs over as bytes.
    assert (b.index, b.uuid, b.name) == (1, uuid(1), "NVIDIA GeForce RTX 4090")
    assert (b.memory_total_mib, b.memory_used_mib) == (24 * 1024 - 512, 0)
    assert b.processes == ()


@pytest.mark.parametrize("code", [NOT_SUPPORTED, GPU_IS_LOST, UNKNOWN])
def test_failed_fields_are_none(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    failing = (
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses",
        "nvmlDeviceGetMigMode",
    )
    install(monkeypatch, Dev(errors=dict.fromkeys(failing, code)), Dev(uuid=uuid(1)))
    a, b = NvmlProbe().probe()
    assert (a.index, a.uuid, a.name) == (0, "", "unknown GPU")
    assert (a.memory_total_mib, a.memory_used_mib) == (None, None)
    assert (a.utilization_pct, a.temperature_c) == (None, None)
    assert a.processes == ()
    assert (b.index, b.uuid, b.memory_used_mib) == (1, uuid(1), 0)  # its neighbour is fine


def test_some_fields_fail_others_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # A consumer GPU: no utilisation counters, processes hidden (e.g. in a container).
    dev = Dev(
        util=50,
        compute=[(1, GIB)],
        errors={
            "nvmlDeviceGetUtilizationRates": NOT_SUPPORTED,
            "nvmlDeviceGetComputeRunningProcesses": pynvml.NVML_ERROR_NO_PERMISSION,
        },
        graphics=[(2, GIB)],
    )
    install(monkeypatch, dev)
    (g,) = NvmlProbe().probe()
    assert g.utilization_pct is None
    assert g.temperature_c == 35
    assert g.memory_used_mib == 0
    assert g.processes == ((2, 1024),)  # what could be read


def test_lost_gpu_keeps_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        Dev(uuid=uuid(0), errors={"nvmlDeviceGetHandleByIndex": GPU_IS_LOST}),
        Dev(uuid=uuid(1)),
    )
    lost, ok = NvmlProbe().probe()
    assert lost.index == 0
    assert "GPU is lost" in lost.name
    assert (lost.memory_total_mib, lost.memory_used_mib) == (None, None)  # never allocated
    assert (ok.index, ok.uuid) == (1, uuid(1))


def test_memory_v1_fallback_when_driver_lacks_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = install(monkeypatch, Dev(used=GIB), Dev(uuid=uuid(1)))
    nvml.v2_exists = False
    probe = NvmlProbe()
    a, b = probe.probe()
    # v1: full total, reserved counted as used; free (total - used) is the same as with v2.
    assert (a.memory_total_mib, a.memory_used_mib) == (80 * 1024, 1024 + 512)
    assert (b.memory_total_mib, b.memory_used_mib) == (80 * 1024, 512)
    calls = nvml.calls["nvmlDeviceGetMemoryInfo"]
    assert calls == 3  # v2 once (FunctionNotFound), then v1 for each GPU
    probe.probe()
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == calls + 2  # v2 is not asked again


def test_memory_v2_unsupported_on_one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = install(
        monkeypatch, Dev(used=GIB, errors={"memory_v2": NOT_SUPPORTED}), Dev(uuid=uuid(1))
    )
    probe = NvmlProbe()
    a, b = probe.probe()
    assert (a.memory_total_mib, a.memory_used_mib) == (80 * 1024, 1024 + 512)  # v1
    assert (b.memory_total_mib, b.memory_used_mib) == (80 * 1024 - 512, 0)  # still v2
    calls = nvml.calls["nvmlDeviceGetMemoryInfo"]
    probe.probe()
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == 2 * calls  # v2 is still tried


def test_processes_fall_back_to_v2_calls_on_old_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = install(monkeypatch, Dev(compute=[(10, GIB)], graphics=[(11, None)]))
    nvml.unversioned_process_calls_mismatch = True
    (g,) = NvmlProbe().probe()
    assert g.processes == ((10, 1024), (11, None))
    assert nvml.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 1


# -- MIG --------------------------------------------------------------------------------------


def mig_machine(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """GPU 0 in MIG mode (slots: a 3g.40gb, an empty slot, a 1g.10gb with an old-style name),
    GPU 1 that cannot do MIG (NotSupported), GPU 2 with MIG off."""
    mig_a = Dev(
        name="NVIDIA A100-SXM4-80GB MIG 3g.40gb",
        uuid=uuid(0xA, "MIG"),
        total=40 * GIB,
        reserved=0,
        used=10 * GIB,
        compute=[(777, 9 * GIB)],
        errors={
            "nvmlDeviceGetUtilizationRates": NOT_SUPPORTED,
            "nvmlDeviceGetTemperature": NOT_SUPPORTED,
            "memory_v2": NOT_SUPPORTED,
        },
    )
    mig_b = Dev(
        name="NVIDIA A100-SXM4-80GB",  # some drivers give the parent's name
        uuid=uuid(0xB, "MIG"),
        total=9728 * MIB,
        reserved=0,
        slices=1,
        errors={
            "nvmlDeviceGetUtilizationRates": NOT_SUPPORTED,
            "nvmlDeviceGetTemperature": NOT_SUPPORTED,
        },
    )
    return install(
        monkeypatch,
        Dev(uuid=uuid(0), temp=44, mig=[mig_a, NOT_FOUND, mig_b, INVALID_ARGUMENT]),
        Dev(
            name="NVIDIA GeForce RTX 3090",
            uuid=uuid(1),
            total=24 * GIB,
            errors={"nvmlDeviceGetMigMode": NOT_SUPPORTED},
        ),
        Dev(uuid=uuid(2)),
    )


def test_mig_devices_are_listed_after_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    mig_machine(monkeypatch)
    gpus = NvmlProbe().probe()
    assert [g.index for g in gpus] == [0, 1, 2, 3, 4]
    parent, rtx, plain, a, b = gpus
    # The MIG-mode GPU keeps NVML index 0, unallocatable (memory unknown).
    assert parent.uuid == uuid(0)
    assert "MIG mode" in parent.name
    assert (parent.memory_total_mib, parent.memory_used_mib) == (None, None)
    assert parent.processes == ()
    # NotSupported on the MIG query: a plain GPU, at its NVML index.
    assert (rtx.index, rtx.uuid, rtx.memory_total_mib) == (1, uuid(1), 24 * 1024 - 512)
    assert (plain.index, plain.uuid) == (2, uuid(2))
    # The MIG devices, empty slots skipped.
    assert (a.uuid, a.name) == (uuid(0xA, "MIG"), "NVIDIA A100-SXM4-80GB MIG 3g.40gb")
    assert (a.memory_total_mib, a.memory_used_mib) == (40 * 1024, 10 * 1024)  # v1 fallback
    assert a.utilization_pct is None
    assert a.temperature_c == 44  # the parent's
    assert a.processes == ((777, 9 * 1024),)
    assert (b.uuid, b.name) == (uuid(0xB, "MIG"), "NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    assert b.memory_total_mib == 9728


def test_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    mig_machine(monkeypatch)
    gpus = NvmlProbe().probe()
    assert cuda_visible_devices(gpus, [1]) == "1"
    assert cuda_visible_devices(gpus, [2, 1]) == "2,1"
    assert cuda_visible_devices(gpus, [3]) == uuid(0xA, "MIG")
    assert cuda_visible_devices(gpus, [1, 4]) == f"1,{uuid(0xB, 'MIG')}"
    assert cuda_visible_devices(gpus, []) == ""  # CPU-only: hide every GPU
    with pytest.raises(ValueError, match="no GPU with index 9"):
        cuda_visible_devices(gpus, [9])


def test_cuda_visible_devices_for_fake_gpus() -> None:
    gpus = open_probe("fake:4x24GiB").probe()
    assert cuda_visible_devices(gpus, [0, 3]) == "0,3"


# -- lifecycle --------------------------------------------------------------------------------


def test_topology_from_p2p_status_and_common_ancestors(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVLink where NVLink peer-to-peer is OK, else the tier of the closest common PCIe
    ancestor; a pair NVML cannot tell about (NotSupported) is left out; read once."""
    nvml = install(monkeypatch, *(Dev(uuid=uuid(i)) for i in range(4)))
    nvml.nvlinks = {frozenset((0, 1))}
    nvml.levels = {
        frozenset((0, 1)): pynvml.NVML_TOPOLOGY_SINGLE,
        frozenset((0, 2)): pynvml.NVML_TOPOLOGY_SINGLE,  # PIX: one switch
        frozenset((1, 2)): pynvml.NVML_TOPOLOGY_HOSTBRIDGE,  # PHB: one socket
        frozenset((0, 3)): pynvml.NVML_TOPOLOGY_SYSTEM,  # SYS: across sockets
        frozenset((2, 3)): pynvml.NVML_TOPOLOGY_NODE,
    }  # (1, 3) missing: NotSupported
    with NvmlProbe() as probe:
        g = probe.probe()
        asked = nvml.calls["nvmlDeviceGetTopologyCommonAncestor"]
        assert probe.probe()[2].links == g[2].links
        assert nvml.calls["nvmlDeviceGetTopologyCommonAncestor"] == asked  # cached
    assert g[0].links == ((1, NVLINK), (2, SWITCH), (3, FAR))
    assert g[1].links == ((0, NVLINK), (2, SOCKET))
    assert g[3].links == ((0, FAR), (2, SOCKET))
    assert (g[0].nvlink, g[1].nvlink, g[2].nvlink) == ((1,), (0,), ())


@pytest.mark.parametrize("code", [NOT_SUPPORTED, GPU_IS_LOST, UNKNOWN])
def test_topology_errors_leave_links_unknown(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """A board that answers NotSupported (or a GPU lost meanwhile) for every topology
    query: no links, the probe still reads everything else, and placement falls back to
    the lowest indices."""
    devs = [Dev(uuid=uuid(i)) for i in range(3)]
    for d in devs:
        d.errors = {"nvmlDeviceGetTopologyCommonAncestor": code, "nvmlDeviceGetP2PStatus": code}
    nvml = install(monkeypatch, *devs)
    nvml.nvlinks = {frozenset((1, 2))}
    with NvmlProbe() as probe:
        g = probe.probe()
    assert [x.links for x in g] == [(), (), ()]
    assert [x.memory_total_mib for x in g] == [80 * 1024 - 512] * 3
    assert allocate(g, [], Request(2, None)).gpus == (0, 1)


def test_topology_placement_on_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the probe: with GPU 0 busy, a 2-GPU job gets the NVLinked pair
    (2, 3), not the lowest free indices (1, 2) that share only a socket; a GPU in MIG mode
    and a lost GPU take no part in the topology."""
    devs = [Dev(uuid=uuid(i)) for i in range(4)]
    lost = Dev(uuid=uuid(4), errors={"nvmlDeviceGetHandleByIndex": GPU_IS_LOST})
    nvml = install(monkeypatch, *devs, lost)
    nvml.nvlinks = {frozenset((0, 1)), frozenset((2, 3))}
    nvml.levels = {frozenset((a, b)): pynvml.NVML_TOPOLOGY_NODE for a in range(5) for b in range(5)}
    with NvmlProbe() as probe:
        g = probe.probe()
    assert g[4].links == () and g[4].memory_total_mib is None
    assert allocate(g, [Holding(1, (0,), None)], Request(2, None)).gpus == (2, 3)
    assert allocate(g, [], Request(2, None)).gpus == (0, 1)


def test_probe_raises_when_the_driver_goes_away(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = install(monkeypatch, Dev())
    probe = NvmlProbe()
    nvml.count_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    with pytest.raises(GpuUnavailable, match="cannot count the GPUs: Driver Not Loaded"):
        probe.probe()
    nvml.count_error = None
    assert len(probe.probe()) == 1


def test_close_shuts_down_once(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = install(monkeypatch, Dev())
    probe = NvmlProbe()
    probe.close()
    probe.close()
    assert nvml.calls["nvmlShutdown"] == 1
    with pytest.raises(GpuUnavailable, match="closed"):
        probe.probe()


# -- the real library -------------------------------------------------------------------------


def _nvml_loads() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_nvml_loads(), reason="NVML loads here: this tests a machine without a GPU")
def test_real_nvml_without_a_driver() -> None:
    probe = open_probe(None)
    assert probe.kind == "none"
    assert probe.probe() == []
    assert probe.note.startswith("running without GPUs: NVML could not load (no NVIDIA driver?)")
    assert probe.note.endswith("set TMUXTRAIN_GPUS=fake:2x24GiB to simulate")
    with pytest.raises(GpuUnavailable, match=r"^NVML could not load \(no NVIDIA driver\?\)"):
        open_probe("nvml")


@pytest.mark.gpu
def test_real_gpus() -> None:
    with NvmlProbe() as probe:
        gpus = probe.probe()
        again = probe.probe()
    assert gpus, "no GPU found"
    assert [g.index for g in gpus] == list(range(len(gpus)))
    assert [g.uuid for g in again] == [g.uuid for g in gpus]
    for g in gpus:
        assert g.uuid.startswith(("GPU-", "MIG-")), g
        assert g.name and not g.simulated
        if g.memory_total_mib is None:  # a GPU in MIG mode: its MIG devices follow
            assert "MIG" in g.name
            continue
        assert g.memory_total_mib > 1024
        assert g.memory_used_mib is not None
        assert 0 <= g.memory_used_mib <= g.memory_total_mib
        assert g.utilization_pct is None or 0 <= g.utilization_pct <= 100
        assert g.temperature_c is None or 0 < g.temperature_c < 120
        for pid, used in g.processes:
            assert pid > 0
            assert used is None or 0 <= used <= g.memory_total_mib
    visible = cuda_visible_devices(gpus, [gpus[-1].index])
    assert visible == str(gpus[-1].index) or visible.startswith("MIG-")
