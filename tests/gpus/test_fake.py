"""Simulated GPUs (`TMUXTRAIN_GPUS=fake:...`) and `open_probe`'s handling of the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmuxtrain.gpus import GpuUnavailable, open_probe
from tmuxtrain.gpus.fake import FakeProbe

TWO_A100 = """\
- {name: Fake A100, memory: 80GiB}
- {name: Fake A100, memory: 80GiB, used: 20GiB, utilization: 90, temperature: 40}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- fake:NxSIZE ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "count", "mib"),
    [
        ("fake:4x24GiB", 4, 24 * 1024),
        ("fake:2x80G", 2, 80 * 1024),
        ("fake:1x512MiB", 1, 512),
        ("FAKE:3X16gb", 3, 16 * 1024),
        ("fake: 2 x 24 GiB ", 2, 24 * 1024),
        ("2x24GiB", 2, 24 * 1024),  # FakeProbe also takes the part after "fake:"
    ],
)
def test_count_form(spec: str, count: int, mib: int) -> None:
    gpus = FakeProbe(spec).probe()
    assert [g.index for g in gpus] == list(range(count))
    assert [g.uuid for g in gpus] == [f"GPU-fake-{i}" for i in range(count)]
    for g in gpus:
        assert g.memory_total_mib == mib
        assert g.memory_used_mib == 0
        assert g.simulated
        assert g.utilization_pct is None
        assert g.temperature_c is None
        assert g.processes == ()
        assert g.job_used_mib == {}


def test_count_form_note_says_what_is_simulated() -> None:
    probe = open_probe("fake:4x24GiB")
    assert probe.kind == "fake"
    assert "4 x 24 GiB" in probe.note


def test_held_memory_counts_as_used_and_is_attributed() -> None:
    probe = FakeProbe("fake:2x24GiB")
    held = {1: {7: 10 * 1024, 9: 2048}, 5: {3: 100}}  # GPU 5 does not exist: ignored
    gpus = probe.probe(held)
    assert gpus[0].memory_used_mib == 0
    assert gpus[0].job_used_mib == {}
    assert gpus[1].memory_used_mib == 12 * 1024
    assert gpus[1].job_used_mib == {7: 10 * 1024, 9: 2048}
    held[1][11] = 1  # the snapshot is a copy, not a view of the caller's dict
    assert gpus[1].job_used_mib == {7: 10 * 1024, 9: 2048}
    assert probe.probe()[1].memory_used_mib == 0  # nothing held: back to idle


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("fake:4x20apples", "bad size '20apples'"),
        ("fake:0x24GiB", "at least 1 GPU"),
        ("fake:2x0GiB", "at least 1 GPU"),
        ("fake:", "TMUXTRAIN_GPUS"),
    ],
)
def test_bad_count_form(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match="TMUXTRAIN_GPUS") as info:
        open_probe(spec)
    assert problem in str(info.value)


# -- fake:PATH --------------------------------------------------------------------------------


def test_file_form(tmp_path: Path) -> None:
    path = write(tmp_path / "gpus.yaml", TWO_A100)
    probe = open_probe(f"fake:{path}")
    assert probe.kind == "fake"
    assert str(path) in probe.note
    a, b = probe.probe({1: {4: 1024}})
    assert (a.index, a.uuid, a.name) == (0, "GPU-fake-0", "Fake A100")
    assert (a.memory_total_mib, a.memory_used_mib) == (80 * 1024, 0)
    assert (a.utilization_pct, a.temperature_c) == (None, None)
    assert (b.memory_total_mib, b.memory_used_mib) == (80 * 1024, 21 * 1024)  # file + held
    assert (b.utilization_pct, b.temperature_c) == (90, 40)
    assert b.job_used_mib == {4: 1024}
    assert a.simulated and b.simulated


def test_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    write(tmp_path / "gpus.yaml", TWO_A100)
    probe = open_probe("fake:gpus.yaml", base_dir=str(tmp_path))
    assert len(probe.probe()) == 2


def test_relative_path_resolves_against_cwd_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "gpus.yaml", TWO_A100)
    monkeypatch.chdir(tmp_path)
    probe = open_probe("fake:gpus.yaml")
    monkeypatch.chdir("/")  # the scheduler may change directory later
    assert len(probe.probe()) == 2


def test_file_named_like_a_count_is_a_file(tmp_path: Path) -> None:
    write(tmp_path / "2x8G", "- {name: From file, memory: 1GiB}\n")
    gpus = open_probe("fake:2x8G", base_dir=str(tmp_path)).probe()
    assert [g.name for g in gpus] == ["From file"]


def test_memory_as_plain_mib_and_name_as_number(tmp_path: Path) -> None:
    path = write(tmp_path / "g.yaml", "- {name: 3090, memory: 24576, used: 512}\n")
    (g,) = FakeProbe(f"fake:{path}").probe()
    assert (g.name, g.memory_total_mib, g.memory_used_mib) == ("3090", 24576, 512)


def test_empty_list_is_no_gpus(tmp_path: Path) -> None:
    path = write(tmp_path / "g.yaml", "[]\n")
    assert FakeProbe(f"fake:{path}").probe() == []


def test_file_is_reread_on_every_probe(tmp_path: Path) -> None:
    path = write(tmp_path / "gpus.yaml", TWO_A100)
    probe = FakeProbe(f"fake:{path}")
    assert probe.probe()[0].memory_used_mib == 0
    # "Another user starts a process" on GPU 0, and a third GPU appears.
    write(
        path,
        TWO_A100.replace("memory: 80GiB}", "memory: 80GiB, used: 30GiB}")
        + "- {name: Fake H100, memory: 80GiB}\n",
    )
    gpus = probe.probe()
    assert gpus[0].memory_used_mib == 30 * 1024
    assert [g.name for g in gpus] == ["Fake A100", "Fake A100", "Fake H100"]


@pytest.mark.parametrize(
    "broken",
    [
        "",  # truncated, not yet rewritten
        "- {name: Fake A100, memory: 80G",  # half written
        "- {name: Fake A100, memory: lots}\n",
        None,  # moved away mid-rename
    ],
)
def test_broken_rewrite_keeps_last_good_reading(tmp_path: Path, broken: str | None) -> None:
    path = write(tmp_path / "gpus.yaml", TWO_A100)
    probe = FakeProbe(f"fake:{path}")
    good = probe.probe()
    assert probe.last_error is None
    if broken is None:
        path.unlink()
    else:
        write(path, broken)
    assert probe.probe() == good
    assert probe.last_error is not None
    assert str(path) in probe.last_error
    write(path, "- {name: Fake A100, memory: 40GiB}\n")  # the rewrite completes
    assert [g.memory_total_mib for g in probe.probe()] == [40 * 1024]
    assert probe.last_error is None


def test_last_good_reading_still_adds_held(tmp_path: Path) -> None:
    path = write(tmp_path / "gpus.yaml", TWO_A100)
    probe = FakeProbe(f"fake:{path}")
    probe.probe()
    write(path, "- {")
    assert probe.probe({0: {1: 4096}})[0].memory_used_mib == 4096


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("- {name: A, memory: [1\n", ":1:", "bad YAML"),  # the line of the unclosed [
        ("- name: A\n  memory: 8GiB\n  memroy: 8GiB\n", ":3:", "unknown key 'memroy'"),
        ("- name: A\n  memory: 8GiB\n  memroy: 8GiB\n", ":3:", "did you mean 'memory'"),
        ("- {name: A, memory: 8GiB}\n- {name: B}\n", ":2:", "GPU 1: 'memory' is required"),
        ("- {memory: 8GiB}\n", ":1:", "'name' is required"),
        ("- name: A\n  memory: 20 apples\n", ":2:", "memory: bad size '20 apples'"),
        ("- {name: A, memory: 8GiB, used: 9GiB}\n", ":1:", "used: 9 GiB is more than memory"),
        ("- {name: A, memory: 0}\n", ":1:", "memory: must be at least 1 MiB"),
        ("- {name: A, memory: 8GiB, utilization: 150}\n", ":1:", "utilization: must be"),
        ("- {name: A, memory: 8GiB, temperature: hot}\n", ":1:", "temperature: must be"),
        ("- {name: A, memory: true}\n", ":1:", "memory: bad size"),
        ("{name: A, memory: 8GiB}\n", ":1:", "must be a YAML list"),
        ("- just a string\n", ":1:", "GPU 0: must be a mapping"),
        ("", "", "is empty"),
        ("--- []\n--- []\n", ":", "bad YAML"),
        ("- {name: A, memory: 8GiB, nvlink: [1]}\n", ":1:", "nvlink: 1 names no GPU (1 listed)"),
        (
            "- {name: A, memory: 8GiB}\n- {name: A, memory: 8GiB,\n   nvlink: [1]}\n",
            ":3:",
            "GPU 1: nvlink: 1 is this GPU itself",
        ),
        ("- {name: A, memory: 8GiB, nvlink: 1}\n", ":1:", "nvlink: expected a list"),
        ("- {name: A, memory: 8GiB, cpu_socket: [0]}\n", ":1:", "cpu_socket: expected a label"),
        ("- {name: A, memory: 8GiB, processes: [{pid: x}]}\n", ":1:", "pid must be a positive"),
    ],
)
def test_never_valid_file_raises_naming_file_and_line(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = write(tmp_path / "gpus.yaml", text)
    probe = FakeProbe(f"fake:{path}")  # construction does not read the file
    with pytest.raises(GpuUnavailable) as info:
        probe.probe()
    message = str(info.value)
    assert message.startswith(f"fake GPU file {path}{where}")
    assert problem in message
    assert "\n" not in message


def test_missing_file_raises(tmp_path: Path) -> None:
    probe = open_probe("fake:nope.yaml", base_dir=str(tmp_path))
    with pytest.raises(GpuUnavailable, match=r"nope\.yaml: cannot read it: No such file"):
        probe.probe()


# -- open_probe -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["none", "NONE", " none "])
def test_none(spec: str) -> None:
    probe = open_probe(spec)
    assert probe.kind == "none"
    assert probe.probe() == []
    assert probe.probe({0: {1: 2}}) == []
    probe.close()


@pytest.mark.parametrize("spec", ["bogus", "fake", "nvml:0", "4x24GiB", "cuda"])
def test_bad_spec_names_the_variable_and_the_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="TMUXTRAIN_GPUS") as info:
        open_probe(spec)
    assert "fake:NxSIZE" in str(info.value)
    assert "fake:PATH" in str(info.value)


def test_listed_processes_are_outside_memory_unless_a_job_owns_them(tmp_path: Path) -> None:
    """`processes:` in the file: memory held by pids. A pid of no job counts as another
    user's (named in `others`); a job's own pid is that job's memory instead of what it
    declared, as NVML's per-process memory would be."""
    path = write(
        tmp_path / "g.yaml",
        "- {name: A, memory: 40GiB, nvlink: [1],"
        " processes: [{pid: 4711, memory: 10GiB}, {pid: 99, memory: 3GiB}]}\n"
        "- {name: A, memory: 40GiB, nvlink: [0]}\n",
    )
    probe = FakeProbe(f"fake:{path}")
    a, b = probe.probe({0: {7: 8 * 1024}}, lambda: {99: 7})
    assert a.others == ((4711, "", 10 * 1024),)
    assert a.job_used_mib == {7: 3 * 1024}  # observed, not the 8 GiB declared
    assert a.memory_used_mib == 13 * 1024
    assert (a.nvlink, b.nvlink) == ((1,), (0,))
    assert b.others == () and b.memory_used_mib == 0


def test_topology_keys_give_each_gpu_its_links(tmp_path: Path) -> None:
    """`nvlink` (either side may list it), `pcie_switch` and `cpu_socket` labels -> the
    (peer, tier) links the allocator ranks sets by; pairs nothing is said about are left
    out, and a file without these keys has no links at all."""
    path = write(
        tmp_path / "g.yaml",
        "- {name: A, memory: 8GiB, nvlink: [1], pcie_switch: a, cpu_socket: 0}\n"
        "- {name: A, memory: 8GiB, pcie_switch: a, cpu_socket: 0}\n"
        "- {name: A, memory: 8GiB, pcie_switch: b, cpu_socket: 0}\n"
        "- {name: A, memory: 8GiB, cpu_socket: 1}\n"
        "- {name: A, memory: 8GiB}\n",
    )
    g = FakeProbe(f"fake:{path}").probe()
    assert g[0].links == ((1, 0), (2, 2), (3, 3))
    assert g[1].links == ((0, 0), (2, 2), (3, 3))  # NVLink listed by GPU 0 only
    assert g[2].links == ((0, 2), (1, 2), (3, 3))
    assert g[4].links == ()
    assert FakeProbe("fake:2x8GiB").probe()[0].links == ()


def test_a_job_without_a_listed_process_is_unmeasured(tmp_path: Path) -> None:
    """What a job holds by declaration is not a measurement: only memory of its own
    listed pids may be taken as its measured use (learned VRAM reads that)."""
    path = write(
        tmp_path / "g.yaml", "- {name: A, memory: 40GiB, processes: [{pid: 99, memory: 3GiB}]}\n"
    )
    (g,) = FakeProbe(f"fake:{path}").probe({0: {7: 8 * 1024, 8: 1024}}, lambda: {99: 7})
    assert g.job_used_mib == {7: 3 * 1024, 8: 1024}
    assert g.unmeasured == frozenset({8})
