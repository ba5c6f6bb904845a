"""Parsed job/config documents -> validated JobSpecs and Config, with file:line errors.

The YAML text is parsed at the edge (`tmuxtrain.jobfile`) into `LDict`/`LList`, which are
plain dicts and lists that remember the line of every key and item; this module only
validates, so it stays pure and testable without files.
"""

from __future__ import annotations

import difflib
import itertools
import posixpath
import re
from collections.abc import Callable, Iterable
from typing import Any

from tmuxtrain.core.errors import SpecError
from tmuxtrain.core.model import CheckpointSpec, Config, JobSpec
from tmuxtrain.core.units import parse_duration_s, parse_size_mib


class LDict(dict[str, Any]):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int | None = None
    key_lines: dict[str, int]

    def __init__(self, *args: Any, line: int | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.line = line
        self.key_lines = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class LList(list[Any]):
    """A sequence that knows its own line and the line of each item (1-based)."""

    line: int | None = None
    item_lines: list[int | None]

    def __init__(self, *args: Any, line: int | None = None) -> None:
        super().__init__(*args)
        self.line = line
        self.item_lines = []


JOB_KEYS = (
    "name",
    "command",
    "cwd",
    "env",
    "inherit_env",
    "gpus",
    "vram",
    "priority",
    "project",
    "after",
    "retries",
    "retry_on",
    "timeout",
    "metrics",
    "checkpoints",
    "hooks",
    "matrix",
)
CHECKPOINT_KEYS = ("watch", "eval", "gpus", "vram", "keep_best")
HOOK_EVENTS = ("started", "succeeded", "failed", "retrying")
# `{field}` a hook may use; each becomes "${TMUXTRAIN_JOB_FIELD}" when the hook runs.
HOOK_FIELDS = ("id", "name", "state", "exit_code", "attempt", "log", "project", "gpus")
CONFIG_KEYS = (
    "policy",
    "backfill",
    "headroom",
    "max_jobs_per_gpu",
    "keep_finished_windows",
    "shares",
    "hooks",
    "runner",
    "slurm",
    "retry_backoff",
    "cancel_grace",
    "notify",
    "placement",
)
SLURM_KEYS = ("partition", "account", "extra", "log_dir")
POLICIES = ("fifo", "priority", "fair-share")
PLACEMENTS = ("spread", "pack")
RUNNERS = ("tmux", "slurm")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# `{name}` placeholders; `${VAR}` is the shell's and `{{`/`}}` are literal braces.
PLACEHOLDER = re.compile(r"\{\{|\}\}|(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_MATRIX_JOBS = 100_000


class _Ctx:
    """Where we are in the document, so every error names file, line and field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int | None, field: str | None, message: str) -> SpecError:
        return SpecError(self.path, line, field, message)


# What people coming from Slurm, pueue or docker-compose type; checked before fuzzy matching.
ALIASES = {
    "retry": "retries", "gpu": "gpus", "ngpus": "gpus", "deps": "after", "depends_on": "after",
    "dependencies": "after", "workdir": "cwd", "dir": "cwd", "chdir": "cwd", "mem": "vram",
    "memory": "vram", "time": "timeout", "cmd": "command", "run": "command", "script": "command",
    "environment": "env", "group": "project", "nice": "priority",
}  # fmt: skip


def _unknown_keys(ctx: _Ctx, doc: LDict, allowed: Iterable[str], prefix: str) -> None:
    allowed = tuple(allowed)
    for key in doc:
        if key not in allowed:
            alias = ALIASES.get(str(key).lower())
            hint = (
                [alias] if alias in allowed else difflib.get_close_matches(str(key), allowed, n=1)
            )
            msg = f"unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            msg += "" if hint else f"; allowed: {', '.join(allowed)}"
            raise ctx.fail(doc.line_of(key), prefix + str(key), msg)


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _expect(ctx: _Ctx, doc: LDict, key: str, field: str, kinds: tuple[type, ...], what: str) -> Any:
    value = doc[key]
    # YAML's `true` is an int to Python; a count or priority must not accept it.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ctx.fail(doc.line_of(key), field, f"expected {what}, got {_type_name(value)}")
    return value


def _int(ctx: _Ctx, doc: LDict, key: str, field: str, lo: int, hi: int) -> int:
    value = _expect(ctx, doc, key, field, (int,), "an integer")
    if not lo <= value <= hi:
        raise ctx.fail(doc.line_of(key), field, f"must be between {lo} and {hi}, got {value}")
    return int(value)


def _str(ctx: _Ctx, doc: LDict, key: str, field: str, *, allow_num: bool = False) -> str:
    kinds: tuple[type, ...] = (str, int, float) if allow_num else (str,)
    return str(_expect(ctx, doc, key, field, kinds, "a string"))


def _str_list(ctx: _Ctx, doc: LDict, key: str, field: str) -> tuple[str, ...]:
    value = doc[key]
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ctx.fail(doc.line_of(key), field, f"expected strings, got {_type_name(item)}")
        out.append(str(item))
    return tuple(out)


def _parsed(
    ctx: _Ctx, doc: LDict, key: str, field: str, parse: Callable[[str], float], example: str
) -> float | None:
    """A size or duration: a string or number run through `parse`, more than 0."""
    value = doc[key]
    if value is None:
        return None
    line = doc.line_of(key)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ctx.fail(line, field, f"expected a value like {example}, got {_type_name(value)}")
    try:
        parsed = parse(str(value))
    except ValueError as e:
        raise ctx.fail(line, field, str(e)) from None
    if parsed <= 0:
        raise ctx.fail(line, field, "must be more than 0")
    return parsed


def _size(ctx: _Ctx, doc: LDict, key: str, field: str) -> int | None:
    mib = _parsed(ctx, doc, key, field, parse_size_mib, "20GiB")
    return None if mib is None else int(mib)


def _duration(ctx: _Ctx, doc: LDict, key: str, field: str) -> float | None:
    return _parsed(ctx, doc, key, field, parse_duration_s, "12h")


def _mapping(ctx: _Ctx, doc: LDict, key: str, field: str) -> LDict:
    value = doc[key]
    if value is None:
        return LDict(line=doc.line_of(key))
    if not isinstance(value, dict):
        raise ctx.fail(doc.line_of(key), field, f"expected a mapping, got {_type_name(value)}")
    return value if isinstance(value, LDict) else LDict(value, line=doc.line_of(key))


def _regex(ctx: _Ctx, line: int | None, field: str, pattern: str, group: str | None) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ctx.fail(line, field, f"bad regular expression: {e}") from None
    if group and group not in compiled.groupindex:
        raise ctx.fail(line, field, f"pattern needs a named group (?P<{group}>...)")


def fill(template: str, values: dict[str, str], on_unknown: Callable[[str], Exception]) -> str:
    """Replace `{key}` placeholders; `${VAR}` and `{{`/`}}` stay for the shell and as braces."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        key = m.group(1)
        if key not in values:
            raise on_unknown(key)
        return values[key]

    return PLACEHOLDER.sub(sub, template)


def _placeholders(template: str) -> set[str]:
    return {m.group(1) for m in PLACEHOLDER.finditer(template) if m.group(1)}


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if abs(value) >= 1e-4 or value == 0 else f"{value:g}"
    return str(value)


def _matrix(ctx: _Ctx, job: LDict, field: str) -> list[dict[str, str]]:
    if "matrix" not in job:
        return [{}]
    matrix = _mapping(ctx, job, "matrix", field + "matrix")
    axes: list[tuple[str, list[str]]] = []
    for key, values in matrix.items():
        line = matrix.line_of(key)
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise ctx.fail(line, f"{field}matrix.{key}", "matrix keys must be identifiers")
        if key in ("name", "checkpoint"):
            raise ctx.fail(line, f"{field}matrix.{key}", f"'{key}' is a reserved placeholder")
        vals = values if isinstance(values, list) else [values]
        if not vals:
            raise ctx.fail(line, f"{field}matrix.{key}", "needs at least one value")
        for v in vals:
            if isinstance(v, (dict, list)) or v is None:
                raise ctx.fail(line, f"{field}matrix.{key}", "values must be scalars")
        axes.append((key, [_fmt_value(v) for v in vals]))
    count = 1
    for _, vals in axes:
        count *= len(vals)
    if count > MAX_MATRIX_JOBS:
        raise ctx.fail(
            matrix.line, field + "matrix", f"expands to {count} jobs (limit {MAX_MATRIX_JOBS})"
        )
    keys = [k for k, _ in axes]
    return [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def _merge_defaults(defaults: LDict, job: LDict) -> LDict:
    merged = LDict(line=job.line)
    for src in (defaults, job):
        for key, value in src.items():
            if key == "env" and isinstance(merged.get("env"), dict) and isinstance(value, dict):
                env = LDict(merged["env"], line=src.line_of(key))
                env.update(value)
                value = env
            merged[key] = value
            merged.key_lines[key] = src.line_of(key) or 0
    return merged


def parse_jobs(
    doc: Any, path: str, base_dir: str, *, default_name: str = "job", home: str | None = None
) -> list[JobSpec]:
    """Validate one job file's document (one job, or `jobs:` with `defaults:`), expand matrices.

    Raises SpecError on the first problem; nothing is returned for a file with any bad job.
    `base_dir` is the file's folder (the default and the anchor of a relative `cwd`).
    """
    ctx = _Ctx(path)
    if doc is None:
        raise ctx.fail(None, None, "empty job file: expected a job (name, command...) or jobs:")
    if not isinstance(doc, dict):
        line = getattr(doc, "line", None)
        raise ctx.fail(line, None, f"expected a mapping with a job or jobs:, got {_type_name(doc)}")
    doc = doc if isinstance(doc, LDict) else LDict(doc)
    if "jobs" in doc:
        _unknown_keys(ctx, doc, ("jobs", "defaults"), "")
        defaults = _mapping(ctx, doc, "defaults", "defaults") if "defaults" in doc else LDict()
        _unknown_keys(ctx, defaults, JOB_KEYS, "defaults.")
        jobs = doc["jobs"]
        if not isinstance(jobs, list) or not jobs:
            raise ctx.fail(doc.line_of("jobs"), "jobs", "expected a non-empty list of jobs")
        entries = []
        for i, job in enumerate(jobs):
            line = jobs.item_lines[i] if isinstance(jobs, LList) else None
            if not isinstance(job, dict):
                raise ctx.fail(line, f"jobs[{i}]", f"expected a mapping, got {_type_name(job)}")
            job = job if isinstance(job, LDict) else LDict(job, line=line)
            _unknown_keys(ctx, job, JOB_KEYS, f"jobs[{i}].")
            entries.append((f"jobs[{i}].", _merge_defaults(defaults, job), f"{default_name}-{i}"))
    else:
        _unknown_keys(ctx, doc, JOB_KEYS, "")
        entries = [("", doc, default_name)]

    specs: list[JobSpec] = []
    for field, job, fallback in entries:
        specs.extend(_parse_job(ctx, job, field, base_dir, fallback, home))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            line = int(spec.source.rsplit(":", 1)[1]) if ":" in spec.source else None
            raise ctx.fail(line, "name", f"duplicate job name '{spec.name}' in this file")
        seen[spec.name] = spec.source
    return specs


def _parse_job(
    ctx: _Ctx, job: LDict, field: str, base_dir: str, fallback: str, home: str | None
) -> list[JobSpec]:
    if "command" not in job:
        raise ctx.fail(job.line, field + "command", "missing: every job needs a command")
    cmd_value = job["command"]
    if isinstance(cmd_value, list) and all(isinstance(c, (str, int, float)) for c in cmd_value):
        import shlex

        command = shlex.join(str(c) for c in cmd_value)
    else:
        command = _str(ctx, job, "command", field + "command")
    if not command.strip():
        raise ctx.fail(job.line_of("command"), field + "command", "is empty")

    combos = _matrix(ctx, job, field)
    name_t = _str(ctx, job, "name", field + "name", allow_num=True) if "name" in job else fallback
    if not name_t.strip() or "\n" in name_t or len(name_t) > 200:
        raise ctx.fail(job.line_of("name"), field + "name", "must be one non-empty line (max 200)")
    if combos != [{}]:  # every matrix key must show in the name, or names would repeat
        missing = [k for k in combos[0] if k not in _placeholders(name_t)]
        name_t += "".join(f"-{k}{{{k}}}" for k in missing)

    def unknown(
        fname: str, allowed: Iterable[str], line: int | None = None
    ) -> Callable[[str], Exception]:
        def make(key: str) -> Exception:
            known = ", ".join(sorted(allowed)) or "none (add a matrix:)"
            return ctx.fail(
                line if line is not None else job.line_of(fname.split(".", 1)[0]),
                field + fname,
                f"unknown placeholder {{{key}}}; known: {known}"
                " (write {{ }} for a literal brace)",
            )

        return make

    gpus = _int(ctx, job, "gpus", field + "gpus", 0, 64) if "gpus" in job else 1
    vram = _size(ctx, job, "vram", field + "vram") if "vram" in job else None
    if gpus == 0 and vram is not None:
        raise ctx.fail(job.line_of("vram"), field + "vram", "set with gpus: 0 (a CPU-only job)")
    priority = (
        _int(ctx, job, "priority", field + "priority", -(10**6), 10**6) if "priority" in job else 0
    )
    project = (
        _str(ctx, job, "project", field + "project", allow_num=True)
        if "project" in job
        else "default"
    )
    after = _str_list(ctx, job, "after", field + "after") if "after" in job else ()
    retries = _int(ctx, job, "retries", field + "retries", 0, 1000) if "retries" in job else 0
    retry_on = _str_list(ctx, job, "retry_on", field + "retry_on") if "retry_on" in job else ()
    for pattern in retry_on:
        _regex(ctx, job.line_of("retry_on"), field + "retry_on", pattern, None)
    timeout = _duration(ctx, job, "timeout", field + "timeout") if "timeout" in job else None
    inherit = True
    if "inherit_env" in job:
        inherit = _expect(ctx, job, "inherit_env", field + "inherit_env", (bool,), "true or false")

    env_t: dict[str, str] = {}
    env_lines: dict[str, int | None] = {}
    if "env" in job:
        env_doc = _mapping(ctx, job, "env", field + "env")
        for key, value in env_doc.items():
            if not isinstance(key, str) or not ENV_NAME.match(key):
                raise ctx.fail(
                    env_doc.line_of(key), f"{field}env.{key}", "not a valid variable name"
                )
            if isinstance(value, (dict, list)):
                raise ctx.fail(env_doc.line_of(key), f"{field}env.{key}", "expected a string")
            env_lines[key] = env_doc.line_of(key)
            env_t[key] = (
                ""
                if value is None
                else _fmt_value(value).lower()
                if isinstance(value, bool)
                else _fmt_value(value)
            )

    metrics: dict[str, str] = {}
    if "metrics" in job:
        mdoc = _mapping(ctx, job, "metrics", field + "metrics")
        for key in mdoc:
            metrics[str(key)] = _str(ctx, mdoc, key, f"{field}metrics.{key}")
            _regex(ctx, mdoc.line_of(key), f"{field}metrics.{key}", metrics[str(key)], "value")

    hooks: dict[str, str] = {}
    if "hooks" in job:
        hdoc = _mapping(ctx, job, "hooks", field + "hooks")
        _unknown_keys(ctx, hdoc, HOOK_EVENTS, field + "hooks.")
        hooks = _hooks(ctx, hdoc, field + "hooks.")

    ck_doc: LDict | None = None
    if "checkpoints" in job:
        ck_doc = _mapping(ctx, job, "checkpoints", field + "checkpoints")
        _unknown_keys(ctx, ck_doc, CHECKPOINT_KEYS, field + "checkpoints.")
        for key in ("watch", "eval"):
            if key not in ck_doc:
                raise ctx.fail(ck_doc.line, f"{field}checkpoints.{key}", "missing")

    cwd_t = _str(ctx, job, "cwd", field + "cwd") if "cwd" in job else None
    specs = []
    for combo in combos:
        values = dict(combo)
        name = fill(name_t, values, unknown("name", values))
        values["name"] = name
        command_s = fill(command, values, unknown("command", values))
        cwd = base_dir
        if cwd_t is not None:
            c = fill(cwd_t, values, unknown("cwd", values))
            if home and (c == "~" or c.startswith("~/")):
                c = home + c[1:]
            cwd = posixpath.normpath(posixpath.join(base_dir, c))
        env = {
            k: fill(v, values, unknown(f"env.{k}", values, env_lines[k])) for k, v in env_t.items()
        }
        ck = None
        if ck_doc is not None:
            ck_values = {**values, "checkpoint": "{checkpoint}"}
            ck = CheckpointSpec(
                watch=fill(
                    _str(ctx, ck_doc, "watch", field + "checkpoints.watch"),
                    values,
                    unknown("checkpoints.watch", values, ck_doc.line_of("watch")),
                ),
                eval=fill(
                    _str(ctx, ck_doc, "eval", field + "checkpoints.eval"),
                    ck_values,
                    unknown("checkpoints.eval", ck_values, ck_doc.line_of("eval")),
                ),
                gpus=_int(ctx, ck_doc, "gpus", field + "checkpoints.gpus", 0, 64)
                if "gpus" in ck_doc
                else 1,
                vram_mib=_size(ctx, ck_doc, "vram", field + "checkpoints.vram")
                if "vram" in ck_doc
                else None,
                keep_best=_str(ctx, ck_doc, "keep_best", field + "checkpoints.keep_best")
                if "keep_best" in ck_doc
                else None,
            )
        specs.append(
            JobSpec(
                name=name,
                command=command_s,
                cwd=cwd,
                env=env,
                inherit_env=inherit,
                gpus=gpus,
                vram_mib=vram,
                priority=priority,
                project=project,
                after=tuple(fill(a, values, unknown("after", values)) for a in after),
                retries=retries,
                retry_on=retry_on,
                timeout_s=timeout,
                metrics=metrics,
                checkpoints=ck,
                hooks=hooks,
                source=f"{ctx.path}:{job.line or 0}",
            )
        )
    return specs


def _hooks(ctx: _Ctx, hdoc: LDict, prefix: str) -> dict[str, str]:
    hooks = {}
    for key in hdoc:
        hooks[key] = _str(ctx, hdoc, key, prefix + key)
        bad = sorted(_placeholders(hooks[key]) - set(HOOK_FIELDS))
        if bad:
            raise ctx.fail(
                hdoc.line_of(key),
                prefix + key,
                f"unknown placeholder {{{bad[0]}}}; known: {', '.join(HOOK_FIELDS)}",
            )
    return hooks


def parse_config(doc: Any, path: str) -> Config:
    """Validate config.yaml; absent keys keep Config's defaults."""
    ctx = _Ctx(path)
    if doc is None:
        return Config()
    if not isinstance(doc, dict):
        raise ctx.fail(
            getattr(doc, "line", None), None, f"expected a mapping, got {_type_name(doc)}"
        )
    doc = doc if isinstance(doc, LDict) else LDict(doc)
    _unknown_keys(ctx, doc, CONFIG_KEYS, "")
    kw: dict[str, Any] = {}
    if "policy" in doc:
        kw["policy"] = _str(ctx, doc, "policy", "policy")
        if kw["policy"] not in POLICIES:
            raise ctx.fail(doc.line_of("policy"), "policy", f"must be one of {', '.join(POLICIES)}")
    if "runner" in doc:
        kw["runner"] = _str(ctx, doc, "runner", "runner")
        if kw["runner"] not in RUNNERS:
            raise ctx.fail(doc.line_of("runner"), "runner", f"must be one of {', '.join(RUNNERS)}")
    if "placement" in doc:
        kw["placement"] = _str(ctx, doc, "placement", "placement")
        if kw["placement"] not in PLACEMENTS:
            raise ctx.fail(doc.line_of("placement"), "placement", "must be spread or pack")
    if "notify" in doc:
        kw["notify"] = _expect(ctx, doc, "notify", "notify", (bool,), "true or false")
    if "backfill" in doc:
        kw["backfill"] = _expect(ctx, doc, "backfill", "backfill", (bool,), "true or false")
    if "headroom" in doc:
        kw["headroom_mib"] = (
            0 if doc["headroom"] in (0, "0") else _size(ctx, doc, "headroom", "headroom")
        )
    if "max_jobs_per_gpu" in doc:
        kw["max_jobs_per_gpu"] = _int(ctx, doc, "max_jobs_per_gpu", "max_jobs_per_gpu", 1, 1000)
    if "keep_finished_windows" in doc:
        kw["keep_finished_windows"] = _int(
            ctx, doc, "keep_finished_windows", "keep_finished_windows", 0, 10**6
        )
    if "retry_backoff" in doc:
        kw["retry_backoff_s"] = (
            0.0
            if doc["retry_backoff"] in (0, "0")
            else _duration(ctx, doc, "retry_backoff", "retry_backoff")
        )
    if "cancel_grace" in doc:
        kw["cancel_grace_s"] = _duration(ctx, doc, "cancel_grace", "cancel_grace")
    if "shares" in doc:
        sdoc = _mapping(ctx, doc, "shares", "shares")
        shares = {}
        for key in sdoc:
            value = _expect(ctx, sdoc, key, f"shares.{key}", (int, float), "a number")
            if value <= 0:
                raise ctx.fail(sdoc.line_of(key), f"shares.{key}", "must be more than 0")
            shares[str(key)] = float(value)
        kw["shares"] = shares
    if "hooks" in doc:
        hdoc = _mapping(ctx, doc, "hooks", "hooks")
        _unknown_keys(ctx, hdoc, HOOK_EVENTS, "hooks.")
        kw["hooks"] = _hooks(ctx, hdoc, "hooks.")
    if "slurm" in doc:
        sdoc = _mapping(ctx, doc, "slurm", "slurm")
        _unknown_keys(ctx, sdoc, SLURM_KEYS, "slurm.")
        kw["slurm"] = dict(sdoc)
    return Config(**kw)
