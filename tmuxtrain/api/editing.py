"""What `edit` makes of a job's spec: the edits validated by the job file's own rules
(`core.spec.parse_jobs`), merged into the stored spec, and what changed, as people read it.

Only the edited fields (plus the name, command, GPUs and VRAM, which validate together)
go through the validator: the rest of the stored spec was validated when it was queued and
stays exactly as it is. Text given to `edit` is literal, as in `add -- CMD`: braces are
the user's own, never placeholders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from tmuxtrain.core.errors import SpecError, TmuxtrainError
from tmuxtrain.core.model import JobSpec
from tmuxtrain.core.units import format_duration, format_mib

NONE_WORDS = ("none", "exclusive", "")  # `--vram exclusive`, `--timeout none`: remove it


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def edited_spec(
    old: JobSpec,
    *,
    command: str | None = None,
    gpus: int | None = None,
    vram: str | None = None,
    priority: int | None = None,
    timeout: str | float | None = None,
    env: dict[str, str] | None = None,
    name: str | None = None,
    after: Sequence[str | int] | None = None,
) -> JobSpec:
    """`old` with these edits, validated; a TmuxtrainError naming the option otherwise.
    `gpus=0` drops the VRAM request unless `vram` is given too."""
    from tmuxtrain.core.spec import parse_jobs

    doc: dict[str, Any] = {
        "name": _literal(old.name if name is None else name),
        "command": _literal(old.command if command is None else command),
        "gpus": old.gpus if gpus is None else gpus,
    }
    if vram is not None:
        if vram.strip().lower() not in NONE_WORDS:
            doc["vram"] = vram
    elif old.vram_mib is not None and gpus != 0:
        doc["vram"] = f"{old.vram_mib}MiB"
    if priority is not None:
        doc["priority"] = priority
    clear_timeout = isinstance(timeout, str) and timeout.strip().lower() in NONE_WORDS
    if timeout is not None and not clear_timeout:
        doc["timeout"] = timeout
    if env:
        doc["env"] = {k: _literal(v) for k, v in env.items()}
    if after is not None:
        doc["after"] = [_literal(str(a)) for a in after]
    try:
        [new] = parse_jobs(doc, "edit", old.cwd, default_name=old.name)
    except SpecError as e:
        flag, _, key = (e.field or "").partition(".")
        where = f"--{flag} {key}".strip() if flag else "edit"
        raise TmuxtrainError(f"{where}: {e.message}") from None
    new_timeout = old.timeout_s if timeout is None else None if clear_timeout else new.timeout_s
    return dataclasses.replace(
        old,
        name=new.name,
        command=new.command,
        gpus=new.gpus,
        vram_mib=new.vram_mib,
        priority=new.priority if priority is not None else old.priority,
        timeout_s=new_timeout,
        env={**old.env, **new.env},
        after=new.after if after is not None else old.after,
        # `--vram exclusive` opts out of learned VRAM; another command leaves the sweep,
        # whose measured sizes say nothing of it.
        vram_exclusive=old.vram_exclusive if vram is None else vram.strip().lower() == "exclusive",
        sweep=old.sweep if command is None else None,
    )


def _shown(key: str, value: Any) -> Any:
    if key == "vram_mib":
        return "exclusive" if value is None else format_mib(value)
    if key == "timeout_s":
        return "none" if value is None else format_duration(value)
    return value


FIELDS = {
    "name": "name",
    "command": "command",
    "gpus": "gpus",
    "vram_mib": "vram",
    "priority": "priority",
    "timeout_s": "timeout",
}


def spec_changes(old: JobSpec, new: JobSpec) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for what differs, as `show` would print it; an environment
    variable is `env.NAME`."""
    out: dict[str, list[Any]] = {}
    for attr, key in FIELDS.items():
        a, b = getattr(old, attr), getattr(new, attr)
        if a != b:
            out[key] = [_shown(attr, a), _shown(attr, b)]
    for k, v in new.env.items():
        if old.env.get(k) != v:
            out[f"env.{k}"] = [old.env.get(k), v]
    return out
