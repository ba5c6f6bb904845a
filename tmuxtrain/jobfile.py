"""Read job and config files from disk into located documents (LDict/LList) for core.spec.

This is the only place that touches YAML: it turns every way a file can be wrong (missing,
a folder, binary, empty, malformed, duplicate keys) into a SpecError naming file and line.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml

from tmuxtrain.core.errors import SpecError
from tmuxtrain.core.model import Config, JobSpec
from tmuxtrain.core.spec import LDict, LList, parse_config, parse_jobs

MAX_DEPTH = 32  # nesting of mappings and lists: a job file needs four or five
MAX_BYTES = 10 * 2**20  # a job file of 10 MiB is already no job file


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences remember their lines and refuse duplicate
    keys, and which refuses nesting deeper than MAX_DEPTH (PyYAML recurses per level, so
    `[[[[...` thousands deep would end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    out = LDict(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, "keys must be plain strings", key_node.start_mark
            )
        key = str(key) if not isinstance(key, str) else key
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList(line=node.start_mark.line + 1)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_text(text: str, path: str) -> Any:
    """YAML text -> located document; YAML errors become SpecError with the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if e.context_mark is not None and "stream end" in str(e.problem):
            mark = e.context_mark  # "unclosed [ at end of file": point at the opening line
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (e.context, e.problem) if p) or "malformed YAML"
        raise SpecError(path, line, None, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as e:  # a control character, e.g. pasted colour codes
        line = text[: e.position].count("\n") + 1
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise SpecError(path, line, None, f"invalid YAML: control character {char}") from None
    except yaml.YAMLError as e:
        raise SpecError(path, None, None, f"invalid YAML: {e}") from None
    except RecursionError:  # deep aliases, or whatever the depth bound above missed
        raise SpecError(path, None, None, "invalid YAML: nested too deeply") from None


def read_text(path: str, *, allow_empty: bool = False) -> str:
    """The file's text, or a SpecError saying plainly why it cannot be a job file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(path, None, None, "no such file") from None
    except IsADirectoryError:
        raise SpecError(path, None, None, "is a folder, not a job file") from None
    except OSError as e:
        raise SpecError(path, None, None, e.strerror or str(e)) from None
    if len(data) > MAX_BYTES:
        raise SpecError(path, None, None, "larger than 10 MiB: not a job file")
    if b"\0" in data:
        raise SpecError(path, None, None, "binary file, not YAML")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError(path, line, None, "not UTF-8 text") from None
    if not text.strip() and not allow_empty:
        raise SpecError(
            path, None, None, "empty job file: expected a job (name, command...) or jobs:"
        )
    return text


def apply_overrides(job: dict[str, Any], overrides: dict[str, Any] | None) -> Any:
    """Command-line options win over the file's values (as sbatch flags win over #SBATCH)."""
    if not overrides:
        return job
    out = job if isinstance(job, LDict) else LDict(job)
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "env" and isinstance(out.get("env"), dict):
            merged = LDict(out["env"], line=out.line_of("env"))
            merged.update(value)
            value = merged
        out[key] = value
    return out


def load_jobs(path: str, overrides: dict[str, Any] | None = None) -> list[JobSpec]:
    """Read and validate a job file. cwd defaults to the file's folder."""
    text = read_text(path)
    doc = load_text(text, path)
    if overrides and isinstance(doc, dict):
        jobs = doc.get("jobs")
        if isinstance(jobs, list):
            for i, job in enumerate(jobs):
                if isinstance(job, dict):
                    jobs[i] = apply_overrides(job, overrides)
        else:
            doc = apply_overrides(doc, overrides)
    base_dir = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0] or "job"
    return parse_jobs(doc, path, base_dir, default_name=stem, home=os.path.expanduser("~"))


def load_config(path: str | None) -> Config:
    """The config file, or defaults when there is none. `max_cpu_jobs` defaults to this
    machine's CPU cores (core/ reads no machine facts, so it is filled in here)."""
    if path is None or not os.path.exists(path):
        if path is not None and os.environ.get("TMUXTRAIN_CONFIG") == path:
            raise SpecError(path, None, None, "no such file (from TMUXTRAIN_CONFIG)")
        config = Config()
    else:
        text = read_text(path, allow_empty=True)
        config = parse_config(load_text(text, path), path)
    if config.max_cpu_jobs is None:
        config = dataclasses.replace(config, max_cpu_jobs=os.cpu_count() or 1)
    return config
