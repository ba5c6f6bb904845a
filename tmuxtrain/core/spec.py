"""Parsed job/config documents -> validated JobSpecs and Config, with file:line errors.

The YAML text is parsed at the edge (`tmuxtrain.jobfile`) into `LDict`/`LList`, which are
plain dicts and lists that remember the line of every key and item; this module only
validates, so it stays pure and testable without files.
"""

from __future__ import annotations

import hashlib
import itertools
import posixpath
import re
from collections.abc import Callable, Iterable
from typing import Any

from tmuxtrain.core.config import parse_config
from tmuxtrain.core.model import CheckpointSpec, JobSpec
from tmuxtrain.core.validate import (
    ENV_NAME,
    HOOK_EVENTS,
    HOOK_FIELDS,
    Ctx,
    LDict,
    LList,
    duration_field,
    expect,
    fill,
    fmt_value,
    hooks_field,
    int_field,
    mapping_field,
    placeholders,
    regex_field,
    size_field,
    str_field,
    str_list,
    type_name,
    unknown_keys,
    vram_field,
)

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
    "hold",
    "runner",
    "preemptible",
    "resume",
)
RUNNERS = ("tmux", "slurm")
CHECKPOINT_KEYS = ("watch", "eval", "gpus", "vram", "keep_best")
MAX_MATRIX_JOBS = 100_000


def _matrix(ctx: Ctx, job: LDict, field: str) -> list[dict[str, str]]:
    if "matrix" not in job:
        return [{}]
    matrix = mapping_field(ctx, job, "matrix", field + "matrix")
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
        axes.append((key, [fmt_value(v) for v in vals]))
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
    ctx = Ctx(path)
    if doc is None:
        raise ctx.fail(None, None, "empty job file: expected a job (name, command...) or jobs:")
    if not isinstance(doc, dict):
        line = getattr(doc, "line", None)
        raise ctx.fail(line, None, f"expected a mapping with a job or jobs:, got {type_name(doc)}")
    doc = doc if isinstance(doc, LDict) else LDict(doc)
    if "jobs" in doc:
        unknown_keys(ctx, doc, ("jobs", "defaults"), "")
        defaults = mapping_field(ctx, doc, "defaults", "defaults") if "defaults" in doc else LDict()
        unknown_keys(ctx, defaults, JOB_KEYS, "defaults.")
        jobs = doc["jobs"]
        if not isinstance(jobs, list) or not jobs:
            raise ctx.fail(doc.line_of("jobs"), "jobs", "expected a non-empty list of jobs")
        entries = []
        for i, job in enumerate(jobs):
            line = jobs.item_lines[i] if isinstance(jobs, LList) else None
            if not isinstance(job, dict):
                raise ctx.fail(line, f"jobs[{i}]", f"expected a mapping, got {type_name(job)}")
            job = job if isinstance(job, LDict) else LDict(job, line=line)
            unknown_keys(ctx, job, JOB_KEYS, f"jobs[{i}].")
            entries.append((f"jobs[{i}].", _merge_defaults(defaults, job), f"{default_name}-{i}"))
    else:
        unknown_keys(ctx, doc, JOB_KEYS, "")
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
    ctx: Ctx, job: LDict, field: str, base_dir: str, fallback: str, home: str | None
) -> list[JobSpec]:
    if "command" not in job:
        raise ctx.fail(job.line, field + "command", "missing: every job needs a command")
    cmd_value = job["command"]
    if isinstance(cmd_value, list) and all(isinstance(c, (str, int, float)) for c in cmd_value):
        import shlex

        command = shlex.join(str(c) for c in cmd_value)
    else:
        command = str_field(ctx, job, "command", field + "command")
    if not command.strip():
        raise ctx.fail(job.line_of("command"), field + "command", "is empty")

    combos = _matrix(ctx, job, field)
    name_t = (
        str_field(ctx, job, "name", field + "name", allow_num=True) if "name" in job else fallback
    )
    if not name_t.strip() or "\n" in name_t or len(name_t) > 200:
        raise ctx.fail(job.line_of("name"), field + "name", "must be one non-empty line (max 200)")
    if combos != [{}]:  # every matrix key must show in the name, or names would repeat
        missing = [k for k in combos[0] if k not in placeholders(name_t)]
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

    gpus = int_field(ctx, job, "gpus", field + "gpus", 0, 64) if "gpus" in job else 1
    exclusive = job.get("vram") == "exclusive"  # whole GPUs, and never a learned size
    vram = vram_field(ctx, job, "vram", field + "vram") if "vram" in job and not exclusive else None
    if gpus == 0 and vram is not None:
        raise ctx.fail(job.line_of("vram"), field + "vram", "set with gpus: 0 (a CPU-only job)")
    flags = {
        key: expect(ctx, job, key, field + key, (bool,), "true or false")
        for key in ("hold", "preemptible")
        if key in job
    }
    runner = str_field(ctx, job, "runner", field + "runner") if "runner" in job else None
    if runner is not None and runner not in RUNNERS:
        raise ctx.fail(
            job.line_of("runner"), field + "runner", f"must be one of {', '.join(RUNNERS)}"
        )
    resume_t = str_field(ctx, job, "resume", field + "resume") if "resume" in job else None
    priority = (
        int_field(ctx, job, "priority", field + "priority", -(10**6), 10**6)
        if "priority" in job
        else 0
    )
    project = (
        str_field(ctx, job, "project", field + "project", allow_num=True)
        if "project" in job
        else "default"
    )
    after = str_list(ctx, job, "after", field + "after") if "after" in job else ()
    retries = int_field(ctx, job, "retries", field + "retries", 0, 1000) if "retries" in job else 0
    retry_on = str_list(ctx, job, "retry_on", field + "retry_on") if "retry_on" in job else ()
    for pattern in retry_on:
        regex_field(ctx, job.line_of("retry_on"), field + "retry_on", pattern, None)
    timeout = duration_field(ctx, job, "timeout", field + "timeout") if "timeout" in job else None
    inherit = True
    if "inherit_env" in job:
        inherit = expect(ctx, job, "inherit_env", field + "inherit_env", (bool,), "true or false")

    env_t: dict[str, str] = {}
    env_lines: dict[str, int | None] = {}
    if "env" in job:
        env_doc = mapping_field(ctx, job, "env", field + "env")
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
                else fmt_value(value).lower()
                if isinstance(value, bool)
                else fmt_value(value)
            )

    metrics: dict[str, str] = {}
    if "metrics" in job:
        mdoc = mapping_field(ctx, job, "metrics", field + "metrics")
        for key in mdoc:
            metrics[str(key)] = str_field(ctx, mdoc, key, f"{field}metrics.{key}")
            regex_field(ctx, mdoc.line_of(key), f"{field}metrics.{key}", metrics[str(key)], "value")

    hooks: dict[str, str] = {}
    if "hooks" in job:
        hdoc = mapping_field(ctx, job, "hooks", field + "hooks")
        unknown_keys(ctx, hdoc, HOOK_EVENTS, field + "hooks.")
        hooks = hooks_field(ctx, hdoc, field + "hooks.")

    ck_doc: LDict | None = None
    if "checkpoints" in job:
        ck_doc = mapping_field(ctx, job, "checkpoints", field + "checkpoints")
        unknown_keys(ctx, ck_doc, CHECKPOINT_KEYS, field + "checkpoints.")
        for key in ("watch", "eval"):
            if key not in ck_doc:
                raise ctx.fail(ck_doc.line, f"{field}checkpoints.{key}", "missing")

    cwd_t = str_field(ctx, job, "cwd", field + "cwd") if "cwd" in job else None
    sweep = None
    if sources_sweeps(ctx.path):
        sweep = sweep_key(posixpath.join(base_dir, posixpath.basename(ctx.path)), command)
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
        resume = None if resume_t is None else fill(resume_t, values, unknown("resume", values))
        readable(ctx, job, field, name=name, project=project)
        no_nul(
            ctx,
            job,
            field,
            command=command_s,
            cwd=cwd,
            resume=resume or "",
            **{f"env.{k}": v for k, v in env.items()},
        )
        ck = None
        if ck_doc is not None:
            ck_values = {**values, "checkpoint": "{checkpoint}"}
            ck = CheckpointSpec(
                watch=fill(
                    str_field(ctx, ck_doc, "watch", field + "checkpoints.watch"),
                    values,
                    unknown("checkpoints.watch", values, ck_doc.line_of("watch")),
                ),
                eval=fill(
                    str_field(ctx, ck_doc, "eval", field + "checkpoints.eval"),
                    ck_values,
                    unknown("checkpoints.eval", ck_values, ck_doc.line_of("eval")),
                ),
                gpus=int_field(ctx, ck_doc, "gpus", field + "checkpoints.gpus", 0, 64)
                if "gpus" in ck_doc
                else 1,
                vram_mib=size_field(ctx, ck_doc, "vram", field + "checkpoints.vram")
                if "vram" in ck_doc
                else None,
                keep_best=str_field(ctx, ck_doc, "keep_best", field + "checkpoints.keep_best")
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
                hold=bool(flags.get("hold", False)),
                runner=runner,
                preemptible=bool(flags.get("preemptible", False)),
                resume=resume,
                vram_exclusive=exclusive,
                sweep=sweep,
            )
        )
    return specs


def sweep_key(path: str, command: str) -> str:
    """The sweep a job belongs to: its file and its command before the matrix fills it
    in (its shape). Jobs of one sweep share what is learned of their VRAM."""
    return hashlib.sha1(f"{path}\0{command}".encode()).hexdigest()[:16]


def sources_sweeps(path: str) -> bool:
    """Jobs from a file form sweeps; an ad-hoc command (`add -- CMD`) does not."""
    return not path.startswith("<")


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def readable(ctx: Ctx, job: LDict, field: str, **texts: str) -> None:
    """Names tmux and the dashboard display hold no control characters (a NUL in a window
    name once opened a shell in place of the job)."""
    for key, text in texts.items():
        m = CONTROL.search(text)
        if m:
            bad = f"\\x{ord(m.group()):02x}"
            raise ctx.fail(job.line_of(key), field + key, f"has a control character ({bad})")


def no_nul(ctx: Ctx, job: LDict, field: str, **texts: str) -> None:
    """What goes into the job's wrapper script holds no NUL (no shell can carry one)."""
    for key, text in texts.items():
        if "\x00" in text:
            raise ctx.fail(job.line_of(key.split(".")[0]), field + key, "has a NUL character")


__all__ = ["HOOK_FIELDS", "LDict", "LList", "fill", "parse_config", "parse_jobs"]
