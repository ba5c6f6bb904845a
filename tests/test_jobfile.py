"""Reading job and config files: every way a file can be wrong is one SpecError line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tmuxtrain.core.errors import SpecError
from tmuxtrain.core.model import Config
from tmuxtrain.core.spec import LDict, LList
from tmuxtrain.jobfile import apply_overrides, load_config, load_jobs, load_text, read_text

CORES_CONFIG = Config(max_cpu_jobs=os.cpu_count() or 1)


def write(tmp_path: Path, data: str | bytes, name: str = "job.yaml") -> str:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


def load_error(path: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_jobs(path)
    e = info.value
    msg = str(e)
    assert "\n" not in msg
    assert e.path == path
    assert msg.startswith(path if e.line is None else f"{path}:{e.line}")
    return e


# ---- files that cannot be job files --------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    e = load_error(path)
    assert str(e) == f"{path}: no such file"


def test_folder(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    e = load_error(str(tmp_path / "dir"))
    assert e.message == "is a folder, not a job file"


@pytest.mark.parametrize("data", ["", "   \n\n\t\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, data: str) -> None:
    e = load_error(write(tmp_path, data))
    assert "empty job file" in e.message


def test_empty_file_allowed_for_config(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert read_text(path, allow_empty=True) == ""
    assert load_config(path) == CORES_CONFIG


def test_binary_file(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, b"command: x\x00\x01\x02\n"))
    assert e.message == "binary file, not YAML"


def test_non_utf8_file_reports_the_line(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, b"command: x\ngpus: 1\n# caf\xe9\n"))
    assert e.line == 3
    assert e.message == "not UTF-8 text"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    [spec] = load_jobs(write(tmp_path, b"\xef\xbb\xbfcommand: x\n"))
    assert spec.command == "x"


def test_file_too_large(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, b"#" * (10 * 2**20 + 1)))
    assert "larger than 10 MiB" in e.message


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("command: x\nname: [a\ngpus: 1\n", 3),
        ("command: x\n  bad: indent\n", 2),
        ("command: x\nenv: {A: 1\n", 2),  # unclosed at end of file: the opening line
        ("command: 'x\n", 2),
    ],
)
def test_malformed_yaml_reports_the_line(tmp_path: Path, data: str, line: int) -> None:
    e = load_error(write(tmp_path, data))
    assert e.line == line
    assert e.message.startswith("invalid YAML: ")


def test_control_character_reports_one_line_with_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "command: x\n\x1b[0mgpus: 1\n")
    with pytest.raises(SpecError) as info:
        load_jobs(path)
    assert "\n" not in str(info.value)
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("data", "line", "key"),
    [
        ("command: x\ngpus: 1\ngpus: 2\n", 3, "gpus"),
        ("command: x\nenv:\n  A: 1\n  B: 2\n  A: 3\n", 5, "A"),
        ("jobs:\n  - command: x\n    name: a\n    name: b\n", 4, "name"),
    ],
)
def test_duplicate_keys_report_the_line(tmp_path: Path, data: str, line: int, key: str) -> None:
    e = load_error(write(tmp_path, data))
    assert e.line == line
    assert e.message == f"invalid YAML: duplicate key '{key}'"


def test_non_scalar_key(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, "command: x\n? [a, b]\n: 1\n"))
    assert e.line == 2
    assert "keys must be plain strings" in e.message


def test_top_level_list(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, "- command: x\n- command: y\n"))
    assert e.line == 1
    assert "expected a mapping with a job or jobs:, got a list" in e.message


def test_top_level_scalar(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, "python train.py\n"))
    assert "expected a mapping" in e.message


# ---- located documents ---------------------------------------------------------------------


def test_load_text_records_lines() -> None:
    doc = load_text("a: 1\nb:\n  c: 2\n\n  d: [x,\n      y]\ne:\n  - 1\n  - 2\n", "f.yaml")
    assert isinstance(doc, LDict)
    assert doc.line == 1
    assert doc.key_lines == {"a": 1, "b": 2, "e": 7}
    assert isinstance(doc["b"], LDict)
    assert doc["b"].key_lines == {"c": 3, "d": 5}
    assert isinstance(doc["e"], LList)
    assert doc["e"].item_lines == [8, 9]
    assert doc["b"]["d"] == ["x", "y"]


def test_load_text_numeric_keys_become_strings() -> None:
    doc = load_text("1: a\ntrue: b\n", "f.yaml")
    assert set(doc) == {"1", "True"}


def test_load_text_is_safe() -> None:
    with pytest.raises(SpecError) as info:
        load_text("a: !!python/object/apply:os.system ['true']\n", "f.yaml")
    assert info.value.line == 1


# ---- overrides (command-line options win) --------------------------------------------------


def test_apply_overrides_on_a_plain_dict() -> None:
    job = {"command": "x", "gpus": 1, "env": {"A": "1", "B": "2"}}
    out = apply_overrides(job, {"gpus": 2, "vram": "4GiB", "env": {"B": "3"}, "name": None})
    assert out["gpus"] == 2
    assert out["vram"] == "4GiB"
    assert out["env"] == {"A": "1", "B": "3"}
    assert "name" not in out  # None means "not given"
    assert apply_overrides(job, None) is job
    assert apply_overrides(job, {}) is job


def test_overrides_on_a_single_job_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncommand: x\ngpus: 1\npriority: 1\nenv: {A: '1', B: '2'}\n")
    [spec] = load_jobs(
        path, {"gpus": 2, "vram": "4GiB", "priority": 9, "env": {"B": "x", "C": "y"}}
    )
    assert (spec.gpus, spec.vram_mib, spec.priority) == (2, 4096, 9)
    assert spec.env == {"A": "1", "B": "x", "C": "y"}
    assert spec.name == "a"


def test_overrides_on_every_job_of_a_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
defaults:
  env: {D: '1'}
  priority: 3
jobs:
  - name: a
    command: x
    env: {A: '1'}
  - name: b
    command: y
    priority: 5
    matrix: {s: [1, 2]}
""",
    )
    specs = load_jobs(path, {"priority": 7, "project": "p", "env": {"O": "o"}, "retries": None})
    assert [s.name for s in specs] == ["a", "b-s1", "b-s2"]
    assert all(s.priority == 7 for s in specs)
    assert all(s.project == "p" for s in specs)
    assert all(s.retries == 0 for s in specs)
    assert specs[0].env == {"D": "1", "A": "1", "O": "o"}
    assert specs[1].env == {"D": "1", "O": "o"}


def test_bad_override_is_a_spec_error(tmp_path: Path) -> None:
    path = write(tmp_path, "command: x\n")
    with pytest.raises(SpecError) as info:
        load_jobs(path, {"gpus": "two"})
    assert info.value.field == "gpus"
    assert info.value.path == path


# ---- config files --------------------------------------------------------------------------


def test_load_config_none_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMUXTRAIN_CONFIG", raising=False)
    assert load_config(None) == CORES_CONFIG  # max_cpu_jobs: the machine's cores
    assert load_config(str(tmp_path / "absent.yaml")) == CORES_CONFIG


def test_load_config_missing_named_by_env_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "absent.yaml")
    monkeypatch.setenv("TMUXTRAIN_CONFIG", path)
    with pytest.raises(SpecError) as info:
        load_config(path)
    assert "TMUXTRAIN_CONFIG" in str(info.value)


def test_load_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, "policy: fifo\nheadroom: 0\n", "config.yaml")
    cfg = load_config(path)
    assert (cfg.policy, cfg.headroom_mib) == ("fifo", 0)
    bad = write(tmp_path, "policy: fifo\n\npolicy: priority\n", "bad.yaml")
    with pytest.raises(SpecError) as info:
        load_config(bad)
    assert info.value.line == 3


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = write(tmp_path, "command: x\n")
    os.chmod(path, 0)
    e = load_error(path)
    assert e.line is None
    assert "ermission" in e.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("command: x\nenv: " + "[" * 5000 + "]" * 5000 + "\n", 2),
        ("command: x\nenv: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", 2),
        ("command: x\nenv:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), 34),
    ],
    ids=["lists", "mappings", "block"],
)
def test_nesting_is_bounded_with_the_line(tmp_path: Path, text: str, line: int) -> None:
    e = load_error(write(tmp_path, text))
    assert e.line == line and "nested more than 32 levels deep" in str(e)


def test_a_file_over_10_mib_is_refused_unread(tmp_path: Path) -> None:
    e = load_error(write(tmp_path, "command: x\n" + "#" * (10 * 2**20)))
    assert "larger than 10 MiB" in str(e)
