"""Job and config documents -> JobSpecs and Config: the job file contract, and its errors.

Most tests go end to end through `jobfile.load_text` (YAML text -> located LDict/LList) into
`core.spec.parse_jobs`, so line numbers are the ones YAML gives; a few hand-build LDicts to
show the core takes any located document.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmuxtrain.core.errors import SpecError
from tmuxtrain.core.model import Config, JobSpec
from tmuxtrain.core.spec import LDict, parse_config, parse_jobs
from tmuxtrain.jobfile import load_jobs, load_text

PATH = "/work/jobs/train.yaml"
BASE = "/work/jobs"
HOME = "/home/alice"


def parse(text: str) -> list[JobSpec]:
    return parse_jobs(load_text(text, PATH), PATH, BASE, default_name="train", home=HOME)


def one(text: str) -> JobSpec:
    specs = parse(text)
    assert len(specs) == 1
    return specs[0]


def error(text: str) -> SpecError:
    """The SpecError a job document raises; its message must be one line naming the file."""
    with pytest.raises(SpecError) as info:
        parse(text)
    return checked(info.value)


def config_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_config(load_text(text, PATH), PATH)
    return checked(info.value)


def checked(e: SpecError) -> SpecError:
    msg = str(e)
    assert "\n" not in msg
    assert e.path == PATH
    where = PATH if e.line is None else f"{PATH}:{e.line}"
    assert msg.startswith(where + ": ")
    if e.field:
        assert msg.startswith(f"{where}: {e.field}: ")
    return e


# ---- single jobs ---------------------------------------------------------------------------


def test_minimal_job_gets_defaults() -> None:
    spec = one("command: python train.py\n")
    assert spec.name == "train"  # the file's stem
    assert spec.command == "python train.py"
    assert spec.cwd == BASE  # the file's folder
    assert spec.gpus == 1
    assert spec.vram_mib is None  # exclusive
    assert spec.priority == 0
    assert spec.project == "default"
    assert spec.after == ()
    assert spec.retries == 0
    assert spec.timeout_s is None
    assert spec.inherit_env is True
    assert spec.source == f"{PATH}:1"


def test_full_job() -> None:
    spec = one(
        """\
name: resnet
command: python train.py
cwd: runs
env: {WANDB_MODE: offline, SEED: 3, FLAG: true, EMPTY: null}
gpus: 2
vram: 20GiB
priority: 5
project: vision
after: [base, 7]
retries: 2
retry_on: ["CUDA out of memory"]
timeout: 12h
inherit_env: false
metrics: {val_acc: 'val_acc[=: ]+(?P<value>[0-9.]+)'}
hooks: {succeeded: 'notify-send "{name} done"', failed: ./page-me.sh}
"""
    )
    assert spec.name == "resnet"
    assert spec.cwd == f"{BASE}/runs"
    assert spec.env == {"WANDB_MODE": "offline", "SEED": "3", "FLAG": "true", "EMPTY": ""}
    assert spec.gpus == 2
    assert spec.vram_mib == 20 * 1024
    assert spec.priority == 5
    assert spec.project == "vision"
    assert spec.after == ("base", "7")
    assert spec.retries == 2
    assert spec.retry_on == ("CUDA out of memory",)
    assert spec.timeout_s == 12 * 3600
    assert spec.inherit_env is False
    assert spec.metrics == {"val_acc": "val_acc[=: ]+(?P<value>[0-9.]+)"}
    assert spec.hooks == {"succeeded": 'notify-send "{name} done"', "failed": "./page-me.sh"}
    # The spec survives the store's JSON round trip.
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        ("sub/dir", f"{BASE}/sub/dir"),
        ("../up", "/work/up"),
        ("/abs/path", "/abs/path"),
        ("~/runs", f"{HOME}/runs"),
        ("~", HOME),
    ],
)
def test_cwd_is_anchored_at_the_file(cwd: str, expected: str) -> None:
    assert one(f"command: x\ncwd: '{cwd}'\n").cwd == expected


def test_command_as_argv_list_is_quoted() -> None:
    assert one("command: [python, 'my script.py', 3]\n").command == "python 'my script.py' 3"


def test_cpu_only_job() -> None:
    spec = one("command: x\ngpus: 0\n")
    assert spec.gpus == 0
    assert spec.vram_mib is None


# ---- sizes and durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("20GiB", 20 * 1024),
        ("20G", 20 * 1024),
        ("20GB", 20 * 1024),
        ("512MiB", 512),
        ("1.5GiB", 1536),
        ("2048", 2048),  # a plain number is MiB
        ("'2048'", 2048),
    ],
)
def test_vram_sizes(text: str, mib: int) -> None:
    assert one(f"command: x\nvram: {text}\n").vram_mib == mib


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("2d", 172800), ("1h30m", 5400), ("90", 90)],
)
def test_timeout_durations(text: str, seconds: float) -> None:
    assert one(f"command: x\ntimeout: {text}\n").timeout_s == seconds


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("vram: 20 bananas", "vram", "bad size"),
        ("vram: 0", "vram", "more than 0"),
        ("vram: -5", "vram", "bad size"),
        ("vram: true", "vram", "bool"),
        ("vram: [1]", "vram", "a list"),
        ("timeout: 5 years", "timeout", "bad duration"),
        ("timeout: 0", "timeout", "more than 0"),
        ("timeout: 30m1h", "timeout", "bad duration"),
    ],
)
def test_bad_sizes_and_durations(line: str, field: str, words: str) -> None:
    e = error(f"command: x\n{line}\n")
    assert (e.line, e.field) == (2, field)
    assert words in e.message


# ---- wrong types and values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('gpus: "two"', "gpus", "expected an integer, got str"),
        ("gpus: two", "gpus", "expected an integer, got str"),
        ("gpus: true", "gpus", "expected an integer, got bool"),
        ("gpus: 1.5", "gpus", "expected an integer, got float"),
        ("gpus: -1", "gpus", "between 0 and 64"),
        ("retries: -1", "retries", "between 0 and 1000"),
        ("retries: yes", "retries", "got bool"),
        ("priority: high", "priority", "expected an integer"),
        ("env: [A, B]", "env", "expected a mapping, got a list"),
        ("env: FOO=1", "env", "expected a mapping, got str"),
        ("env: {1A: x}", "env.1A", "not a valid variable name"),
        ("env: {A: [1]}", "env.A", "expected a string"),
        ("after: [a, {b: 1}]", "after", "expected strings"),
        ("inherit_env: 'no'", "inherit_env", "true or false"),
        ("name: [a, b]", "name", "expected a string"),
        ("project: [a]", "project", "expected a string"),
        ("command: {a: 1}", "command", "expected a string"),
        ("hooks: [a]", "hooks", "expected a mapping"),
    ],
)
def test_wrong_types(line: str, field: str, words: str) -> None:
    e = error(f"command: x\n{line}\n" if not line.startswith("command") else line + "\n")
    assert e.field == field
    assert words in e.message
    assert e.line == (1 if line.startswith("command") else 2)


def test_command_missing() -> None:
    e = error("name: a\ngpus: 1\n")
    assert (e.line, e.field) == (1, "command")
    assert "missing" in e.message


@pytest.mark.parametrize("command", ["''", "'   '", "null"])
def test_command_empty(command: str) -> None:
    e = error(f"name: a\ncommand: {command}\n")
    assert e.field == "command"
    assert e.line == 2


@pytest.mark.parametrize("name", ['"a\\nb"', "''", "'  '", "'" + "x" * 201 + "'"])
def test_bad_name(name: str) -> None:
    e = error(f"command: x\nname: {name}\n")
    assert (e.line, e.field) == (2, "name")
    assert "one non-empty line" in e.message


def test_numeric_name_and_project_are_strings() -> None:
    spec = one("command: x\nname: 12\nproject: 2024\n")
    assert (spec.name, spec.project) == ("12", "2024")


def test_vram_with_cpu_only_job_is_rejected() -> None:
    e = error("command: x\ngpus: 0\nvram: 1GiB\n")
    assert (e.line, e.field) == (3, "vram")
    assert "gpus: 0" in e.message


# ---- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "hint"),
    [("vrma", "vram"), ("comand", "command"), ("gpu", "gpus"), ("timout", "timeout")],
)
def test_unknown_key_did_you_mean(key: str, hint: str) -> None:
    e = error(f"command: x\n{key}: 1\n")
    assert (e.line, e.field) == (2, key)
    assert e.message == f"unknown key '{key}' (did you mean '{hint}'?)"


def test_unknown_key_without_close_match_lists_allowed() -> None:
    e = error("command: x\nzzzzzz: 1\n")
    assert e.message.startswith("unknown key 'zzzzzz'; allowed: name, command,")


def test_unknown_key_in_jobs_list_and_defaults() -> None:
    e = error("jobs:\n  - name: a\n    command: x\n  - name: b\n    command: y\n    vrma: 1G\n")
    assert (e.line, e.field) == (6, "jobs[1].vrma")
    assert "did you mean 'vram'" in e.message
    e = error("defaults:\n  gpus: 1\n  vrma: 1\njobs:\n  - command: x\n")
    assert (e.line, e.field) == (3, "defaults.vrma")
    e = error("jobs:\n  - command: x\ndefault:\n  gpus: 1\n")
    assert (e.line, e.field) == (3, "default")
    assert "did you mean 'defaults'" in e.message


@pytest.mark.parametrize(
    "text",
    [
        '"a\\nb": 1\ncommand: x\n',
        'command: x\nenv: {"A\\nB": 1}\n',
        'command: x\nmatrix: {"a\\nb": [1]}\n',
    ],
)
def test_error_with_newline_in_key_stays_one_line(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(text)
    assert "\n" not in str(info.value)


# ---- jobs: and defaults: -------------------------------------------------------------------


def test_jobs_with_defaults_env_merged_job_keys_win() -> None:
    specs = parse(
        """\
defaults:
  env: {A: '1', B: '2'}
  gpus: 2
  project: shared
jobs:
  - name: a
    command: x
    env: {B: '3', C: '4'}
    gpus: 1
  - name: b
    command: y
"""
    )
    a, b = specs
    assert a.env == {"A": "1", "B": "3", "C": "4"}
    assert a.gpus == 1
    assert a.project == "shared"
    assert b.env == {"A": "1", "B": "2"}
    assert b.gpus == 2
    assert (a.source, b.source) == (f"{PATH}:6", f"{PATH}:10")


def test_jobs_without_names_are_numbered_from_the_file_stem() -> None:
    specs = parse("jobs:\n  - command: x\n  - command: y\n")
    assert [s.name for s in specs] == ["train-0", "train-1"]


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("jobs: []\n", 1, "jobs"),
        ("jobs: {a: 1}\n", 1, "jobs"),
        ("jobs:\n  - 5\n", 2, "jobs[0]"),
        ("jobs:\n  - command: x\ncommand: y\n", 3, "command"),
    ],
)
def test_bad_jobs_list(text: str, line: int, field: str) -> None:
    e = error(text)
    assert (e.line, e.field) == (line, field)


def test_duplicate_names_in_one_file() -> None:
    e = error("jobs:\n  - name: a\n    command: x\n  - name: a\n    command: y\n")
    assert (e.line, e.field) == (4, "name")
    assert "duplicate job name 'a'" in e.message


def test_top_level_list_is_rejected() -> None:
    e = error("- command: x\n- command: y\n")
    assert e.line == 1
    assert "expected a mapping" in e.message


def test_empty_document_is_rejected() -> None:
    with pytest.raises(SpecError, match="empty job file"):
        parse_jobs(None, PATH, BASE)


# ---- matrix --------------------------------------------------------------------------------


def test_matrix_expands_cartesian_product_with_placeholders_everywhere() -> None:
    specs = parse(
        """\
name: resnet-lr{lr}-s{seed}
command: python train.py --lr {lr} --seed {seed} --out ${HOME}/{name} --fmt '{{x}}' $USER
cwd: runs/{lr}
env: {LR: '{lr}', RUN: '{name}'}
after: ['base-s{seed}']
matrix: {lr: [1e-3, 0.0003], seed: [0, 1, 2]}
"""
    )
    assert [s.name for s in specs] == [
        "resnet-lr1e-3-s0",
        "resnet-lr1e-3-s1",
        "resnet-lr1e-3-s2",
        "resnet-lr0.0003-s0",
        "resnet-lr0.0003-s1",
        "resnet-lr0.0003-s2",
    ]
    s = specs[4]
    assert s.command == (
        "python train.py --lr 0.0003 --seed 1 --out ${HOME}/resnet-lr0.0003-s1 --fmt '{x}' $USER"
    )
    assert s.cwd == f"{BASE}/runs/0.0003"
    assert s.env == {"LR": "0.0003", "RUN": "resnet-lr0.0003-s1"}
    assert s.after == ("base-s1",)
    assert all(x.source == f"{PATH}:1" for x in specs)


def test_matrix_auto_suffix_when_name_has_no_placeholder() -> None:
    specs = parse("name: sweep\ncommand: 'x {opt} {bs}'\nmatrix: {opt: [adam, sgd], bs: 32}\n")
    assert [(s.name, s.command) for s in specs] == [
        ("sweep-optadam-bs32", "x adam 32"),
        ("sweep-optsgd-bs32", "x sgd 32"),
    ]


def test_matrix_in_defaults_and_in_one_job_of_a_list() -> None:
    specs = parse("defaults:\n  matrix: {s: [1, 2]}\njobs:\n  - name: a\n    command: 'x {s}'\n")
    assert [s.name for s in specs] == ["a-s1", "a-s2"]
    specs = parse(
        "jobs:\n  - name: a\n    command: 'x {lr}'\n    matrix: {lr: [1, 2]}\n"
        "  - name: b\n    command: y\n"
    )
    assert [s.name for s in specs] == ["a-lr1", "a-lr2", "b"]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(0, 999), min_size=1, max_size=4, unique=True),
        min_size=1,
        max_size=3,
    )
)
def test_matrix_size_is_the_product_and_names_are_distinct(axes: list[list[int]]) -> None:
    keys = [f"k{i}" for i in range(len(axes))]
    matrix = ", ".join(f"{k}: {vals}" for k, vals in zip(keys, axes, strict=True))
    placeholders = " ".join(f"{{{k}}}" for k in keys)
    specs = parse(f"name: run\ncommand: 'x {placeholders}'\nmatrix: {{{matrix}}}\n")
    expected = 1
    for vals in axes:
        expected *= len(vals)
    assert len(specs) == expected
    assert len({s.name for s in specs}) == expected
    assert len({s.command for s in specs}) == expected


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("name: 'r{bogus}'\ncommand: x\n", 1, "name"),
        ("name: r\ncommand: 'x {bogus}'\n", 2, "command"),
        ("name: r\ncommand: x\ncwd: '{bogus}'\n", 3, "cwd"),
        ("name: r\ncommand: x\nafter: ['{bogus}']\n", 3, "after"),
        ("jobs:\n  - name: r\n    command: 'x {lr} {bogus}'\n    matrix: {lr: [1]}\n", 3, None),
    ],
)
def test_unknown_placeholder_names_field_and_line(text: str, line: int, field: str | None) -> None:
    e = error(text)
    assert e.line == line
    assert e.field == (field or "jobs[0].command")
    assert "unknown placeholder {bogus}" in e.message
    assert "{{ }}" in e.message  # tells how to write a literal brace


@pytest.mark.parametrize(
    ("text", "lines", "field"),
    [
        ("name: r\ncommand: x\nenv:\n  A: '{bogus}'\n", (3, 4), "env.A"),
        (
            "name: r\ncommand: x\ncheckpoints:\n  watch: 'r/{bogus}'\n  eval: e\n",
            (3, 4),
            "checkpoints.watch",
        ),
    ],
)
def test_unknown_placeholder_line_in_nested_field(
    text: str, lines: tuple[int, ...], field: str
) -> None:
    e = error(text)
    assert e.field == field
    assert e.line in lines


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("matrix:\n  lr: []\n", "matrix.lr", "at least one value"),
        ("matrix:\n  name: [1]\n", "matrix.name", "reserved"),
        ("matrix:\n  checkpoint: [1]\n", "matrix.checkpoint", "reserved"),
        ("matrix:\n  lr: [[1]]\n", "matrix.lr", "scalars"),
        ("matrix:\n  lr: [null]\n", "matrix.lr", "scalars"),
        ("matrix:\n  1lr: [1]\n", "matrix.1lr", "identifiers"),
    ],
)
def test_bad_matrix(text: str, field: str, words: str) -> None:
    e = error("name: r\ncommand: x\n" + text)
    assert (e.line, e.field) == (4, field)
    assert words in e.message


def test_matrix_too_large() -> None:
    e = error(
        "name: r\ncommand: x\nmatrix:\n"
        "  a: [" + ", ".join(map(str, range(100))) + "]\n"
        "  b: [" + ", ".join(map(str, range(100))) + "]\n"
        "  c: [" + ", ".join(map(str, range(11))) + "]\n"
    )
    assert e.field == "matrix"
    assert "110000 jobs" in e.message


# ---- metrics, retry_on, checkpoints, hooks -------------------------------------------------


def test_metric_pattern_needs_value_group() -> None:
    e = error("name: a\ncommand: x\nmetrics:\n  acc: 'acc=([0-9.]+)'\n")
    assert (e.line, e.field) == (4, "metrics.acc")
    assert "(?P<value>...)" in e.message


def test_metric_pattern_must_compile() -> None:
    e = error("name: a\ncommand: x\nmetrics:\n  loss: 'l=(?P<value>[0-9'\n")
    assert (e.line, e.field) == (4, "metrics.loss")
    assert e.message.startswith("bad regular expression")


def test_retry_on_must_compile() -> None:
    e = error("name: a\ncommand: x\nretries: 1\nretry_on:\n  - ok\n  - '('\n")
    assert (e.line, e.field) == (4, "retry_on")
    assert e.message.startswith("bad regular expression")
    assert one("command: x\nretry_on: 'CUDA out of memory'\n").retry_on == ("CUDA out of memory",)


def test_checkpoints_keep_checkpoint_placeholder_for_later() -> None:
    spec = one(
        "name: r-{lr}\ncommand: x\nmatrix: {lr: [1]}\n"
        "checkpoints: {watch: 'runs/{name}/*.pt', eval: 'python eval.py {checkpoint} --run {name}',"
        " gpus: 2, vram: 4GiB, keep_best: val_acc}\n"
    )
    ck = spec.checkpoints
    assert ck is not None
    assert ck.watch == "runs/r-1/*.pt"
    assert ck.eval == "python eval.py {checkpoint} --run r-1"
    assert (ck.gpus, ck.vram_mib, ck.keep_best) == (2, 4096, "val_acc")
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("checkpoints: {watch: 'a/*.pt'}\n", "checkpoints.eval"),
        ("checkpoints: {eval: 'e {checkpoint}'}\n", "checkpoints.watch"),
    ],
)
def test_checkpoints_need_watch_and_eval(text: str, field: str) -> None:
    e = error("command: x\n" + text)
    assert (e.line, e.field) == (2, field)
    assert e.message == "missing"


def test_checkpoints_unknown_key() -> None:
    e = error("command: x\ncheckpoints:\n  watch: a\n  eval: b\n  gpu: 1\n")
    assert (e.line, e.field) == (5, "checkpoints.gpu")
    assert "did you mean 'gpus'" in e.message


def test_hooks_unknown_event() -> None:
    e = error("command: x\nhooks:\n  succeeded: a\n  finished: b\n")
    assert (e.line, e.field) == (4, "hooks.finished")
    assert "allowed: started, succeeded, failed, retrying" in e.message


# ---- exact lines in multi-line documents ---------------------------------------------------


def test_exact_lines_in_a_long_document() -> None:
    doc = """\
# a sweep
defaults:
  env:
    A: '1'
  vram: 2GiB

jobs:
  - name: base
    command: python base.py

  - name: big
    command: python big.py
    gpus: 0
"""
    e = error(doc)
    assert (e.line, e.field) == (5, "jobs[1].vram")  # the defaults' vram line

    e = error(doc.replace("    gpus: 0\n", "    retries: -3\n"))
    assert (e.line, e.field) == (13, "jobs[1].retries")

    e = error(doc.replace("    command: python base.py\n", "    command: python {oops}.py\n"))
    assert (e.line, e.field) == (9, "jobs[0].command")


def test_located_ldict_built_by_hand() -> None:
    doc = LDict({"command": "x", "gpus": "two"}, line=10)
    doc.key_lines.update(command=10, gpus=11)
    with pytest.raises(SpecError) as info:
        parse_jobs(doc, PATH, BASE)
    assert (info.value.line, info.value.field) == (11, "gpus")
    assert str(info.value) == f"{PATH}:11: gpus: expected an integer, got str"


def test_plain_dict_without_lines_names_only_the_file() -> None:
    with pytest.raises(SpecError) as info:
        parse_jobs({"command": "x", "vrma": 1}, PATH, BASE)
    assert info.value.line is None
    assert str(info.value) == f"{PATH}: vrma: unknown key 'vrma' (did you mean 'vram'?)"


# ---- end to end through files --------------------------------------------------------------


def test_load_jobs_from_file(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("command: 'x {lr}'\nmatrix: {lr: [1, 2]}\n")
    specs = load_jobs(str(path))
    assert [s.name for s in specs] == ["sweep-lr1", "sweep-lr2"]
    assert all(s.cwd == str(tmp_path) for s in specs)
    assert specs[0].source == f"{path}:1"


def test_load_jobs_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: a\ncommand: x\n\nvrma: 20GiB\n")
    with pytest.raises(SpecError) as info:
        load_jobs(str(path))
    assert str(info.value) == f"{path}:4: vrma: unknown key 'vrma' (did you mean 'vram'?)"


# ---- config --------------------------------------------------------------------------------


def parse_cfg(text: str) -> Config:
    return parse_config(load_text(text, PATH), PATH)


def test_config_defaults() -> None:
    assert parse_cfg("") == Config()
    assert parse_config(None, PATH) == Config()


def test_config_full() -> None:
    cfg = parse_cfg(
        """\
policy: fair-share
backfill: false
headroom: 2GiB
max_jobs_per_gpu: 2
keep_finished_windows: 5
shares: {resnet: 2, llm: 0.5}
hooks: {failed: 'notify-send "{name} failed"'}
runner: slurm
slurm: {partition: gpu}
retry_backoff: 30s
cancel_grace: 1m
"""
    )
    assert cfg == Config(
        policy="fair-share",
        backfill=False,
        headroom_mib=2048,
        max_jobs_per_gpu=2,
        keep_finished_windows=5,
        shares={"resnet": 2.0, "llm": 0.5},
        hooks={"failed": 'notify-send "{name} failed"'},
        runner="slurm",
        slurm={"partition": "gpu"},
        retry_backoff_s=30.0,
        cancel_grace_s=60.0,
    )


@pytest.mark.parametrize("policy", ["fifo", "priority", "fair-share"])
def test_config_policies(policy: str) -> None:
    assert parse_cfg(f"policy: {policy}\n").policy == policy


@pytest.mark.parametrize(("text", "mib"), [("0", 0), ("512MiB", 512), ("1G", 1024), ("300", 300)])
def test_config_headroom(text: str, mib: int) -> None:
    assert parse_cfg(f"headroom: {text}\n").headroom_mib == mib


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("policy: lottery\n", 1, "policy", "must be one of fifo, priority, fair-share"),
        ("polcy: fifo\n", 1, "polcy", "did you mean 'policy'"),
        ("foo: 1\n", 1, "foo", "allowed: policy"),
        ("shares:\n  a: 1\n  b: 0\n", 3, "shares.b", "more than 0"),
        ("shares:\n  a: -1\n", 2, "shares.a", "more than 0"),
        ("shares:\n  a: lots\n", 2, "shares.a", "a number"),
        ("shares:\n  a: true\n", 2, "shares.a", "a number"),
        ("headroom: lots\n", 1, "headroom", "bad size"),
        ("backfill: 1\n", 1, "backfill", "true or false"),
        ("max_jobs_per_gpu: 0\n", 1, "max_jobs_per_gpu", "between 1 and 1000"),
        ("runner: k8s\n", 1, "runner", "must be one of tmux, slurm"),
        ("hooks:\n  done: x\n", 2, "hooks.done", "unknown key"),
        ("cancel_grace: 0\n", 1, "cancel_grace", "more than 0"),
        ("\n\nretry_backoff: soon\n", 3, "retry_backoff", "bad duration"),
    ],
)
def test_config_errors(text: str, line: int, field: str, words: str) -> None:
    e = config_error(text)
    assert (e.line, e.field) == (line, field)
    assert words in e.message


def test_config_must_be_a_mapping() -> None:
    e = config_error("- policy\n")
    assert e.line == 1
    assert "expected a mapping" in e.message


def test_config_placement() -> None:
    from tmuxtrain.core.errors import SpecError as _SpecError
    from tmuxtrain.core.spec import parse_config as _parse_config

    assert _parse_config({"placement": "pack"}, "c.yaml").placement == "pack"
    assert _parse_config({}, "c.yaml").placement == "spread"
    try:
        _parse_config({"placement": "tight"}, "c.yaml")
    except _SpecError as e:
        assert "placement: must be spread or pack" in str(e)
    else:
        raise AssertionError("bad placement accepted")


def test_config_notify() -> None:
    from tmuxtrain.core.spec import parse_config as _parse_config

    assert _parse_config({"notify": True}, "c.yaml").notify is True


def test_new_job_keys_hold_runner_preemptible_resume_and_vram_exclusive() -> None:
    doc = {"name": "a", "command": "python t.py", "hold": True, "runner": "slurm",
           "preemptible": True, "resume": "python t.py --resume", "vram": "exclusive"}  # fmt: skip
    [spec] = parse_jobs(doc, "f.yaml", "/w")
    assert (spec.hold, spec.runner, spec.preemptible) == (True, "slurm", True)
    assert spec.resume == "python t.py --resume"
    assert spec.vram_mib is None and spec.vram_exclusive
    with pytest.raises(SpecError, match="runner: must be one of tmux, slurm"):
        parse_jobs({"command": "x", "runner": "k8s"}, "f.yaml", "/w")


@pytest.mark.parametrize("vram", [10, 0.5, 63])
def test_a_unit_less_vram_below_64_is_refused_with_its_likely_meaning(vram: float) -> None:
    with pytest.raises(SpecError, match=f"vram: {vram:g} means {vram:g} MiB: did you mean"):
        parse_jobs({"command": "x", "vram": vram}, "f.yaml", "/w")
    assert parse_jobs({"command": "x", "vram": 512}, "f.yaml", "/w")[0].vram_mib == 512


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [("name", "a\x00b", "name"), ("name", "a\x1b[31mb", "name"), ("project", "p\x07", "project")],
)
def test_control_characters_are_refused_where_tmux_or_the_dashboard_show_them(
    key: str, value: str, field: str
) -> None:
    with pytest.raises(SpecError, match=f"{field}: has a control character"):
        parse_jobs({"command": "x", key: value}, "f.yaml", "/w")


def test_a_nul_in_what_the_wrapper_runs_is_refused() -> None:
    with pytest.raises(SpecError, match="command: has a NUL character"):
        parse_jobs({"command": "echo a\x00b"}, "f.yaml", "/w")
    with pytest.raises(SpecError, match=r"env\.X: has a NUL character"):
        parse_jobs({"command": "x", "env": {"X": "a\x00"}}, "f.yaml", "/w")
    assert parse_jobs({"command": "echo a\nb\tc"}, "f.yaml", "/w")[0].command == "echo a\nb\tc"
