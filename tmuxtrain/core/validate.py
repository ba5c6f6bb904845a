"""The toolkit every validator of a located YAML document uses: documents that remember
their lines (`LDict`, `LList`), typed field readers that fail with a `SpecError` naming the
file, line and field, "did you mean" for unknown keys, and `{placeholder}` filling. Pure."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from tmuxtrain.core.errors import SpecError
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


HOOK_EVENTS = ("started", "succeeded", "failed", "retrying")
# `{field}` a hook may use; each becomes "${TMUXTRAIN_JOB_FIELD}" when the hook runs.
HOOK_FIELDS = ("id", "name", "state", "exit_code", "attempt", "log", "project", "gpus")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# `{name}` placeholders; `${VAR}` is the shell's and `{{`/`}}` are literal braces.
PLACEHOLDER = re.compile(r"\{\{|\}\}|(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Ctx:
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


def unknown_keys(ctx: Ctx, doc: LDict, allowed: Iterable[str], prefix: str) -> None:
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


def type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def expect(ctx: Ctx, doc: LDict, key: str, field: str, kinds: tuple[type, ...], what: str) -> Any:
    value = doc[key]
    # YAML's `true` is an int to Python; a count or priority must not accept it.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ctx.fail(doc.line_of(key), field, f"expected {what}, got {type_name(value)}")
    return value


def int_field(ctx: Ctx, doc: LDict, key: str, field: str, lo: int, hi: int) -> int:
    value = expect(ctx, doc, key, field, (int,), "an integer")
    if not lo <= value <= hi:
        raise ctx.fail(doc.line_of(key), field, f"must be between {lo} and {hi}, got {value}")
    return int(value)


def str_field(ctx: Ctx, doc: LDict, key: str, field: str, *, allow_num: bool = False) -> str:
    kinds: tuple[type, ...] = (str, int, float) if allow_num else (str,)
    return str(expect(ctx, doc, key, field, kinds, "a string"))


def str_list(ctx: Ctx, doc: LDict, key: str, field: str) -> tuple[str, ...]:
    value = doc[key]
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ctx.fail(doc.line_of(key), field, f"expected strings, got {type_name(item)}")
        out.append(str(item))
    return tuple(out)


def parsed(
    ctx: Ctx, doc: LDict, key: str, field: str, parse: Callable[[str], float], example: str
) -> float | None:
    """A size or duration: a string or number run through `parse`, more than 0."""
    value = doc[key]
    if value is None:
        return None
    line = doc.line_of(key)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ctx.fail(line, field, f"expected a value like {example}, got {type_name(value)}")
    try:
        parsed = parse(str(value))
    except ValueError as e:
        raise ctx.fail(line, field, str(e)) from None
    if parsed <= 0:
        raise ctx.fail(line, field, "must be more than 0")
    return parsed


def size_field(ctx: Ctx, doc: LDict, key: str, field: str) -> int | None:
    mib = parsed(ctx, doc, key, field, parse_size_mib, "20GiB")
    return None if mib is None else int(mib)


def vram_field(ctx: Ctx, doc: LDict, key: str, field: str) -> int | None:
    """A `vram:` size. A plain number is MiB, as in Slurm's --mem; below 64 it is surely a
    forgotten unit (`vram: 10` would be 10 MiB), so it is refused with the likely meaning."""
    value = doc[key]
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d*)?\s*", value):
        number = float(value)  # `--vram 10` on the command line
    if number is not None and 0 < number < 64:
        raise ctx.fail(
            doc.line_of(key), field, f"{number:g} means {number:g} MiB: did you mean {number:g}GiB?"
        )
    return size_field(ctx, doc, key, field)


def duration_field(ctx: Ctx, doc: LDict, key: str, field: str) -> float | None:
    return parsed(ctx, doc, key, field, parse_duration_s, "12h")


def mapping_field(ctx: Ctx, doc: LDict, key: str, field: str) -> LDict:
    value = doc[key]
    if value is None:
        return LDict(line=doc.line_of(key))
    if not isinstance(value, dict):
        raise ctx.fail(doc.line_of(key), field, f"expected a mapping, got {type_name(value)}")
    return value if isinstance(value, LDict) else LDict(value, line=doc.line_of(key))


def regex_field(ctx: Ctx, line: int | None, field: str, pattern: str, group: str | None) -> None:
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


def placeholders(template: str) -> set[str]:
    return {m.group(1) for m in PLACEHOLDER.finditer(template) if m.group(1)}


def fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if abs(value) >= 1e-4 or value == 0 else f"{value:g}"
    return str(value)


def hooks_field(ctx: Ctx, hdoc: LDict, prefix: str) -> dict[str, str]:
    hooks = {}
    for key in hdoc:
        hooks[key] = str_field(ctx, hdoc, key, prefix + key)
        bad = sorted(placeholders(hooks[key]) - set(HOOK_FIELDS))
        if bad:
            raise ctx.fail(
                hdoc.line_of(key),
                prefix + key,
                f"unknown placeholder {{{bad[0]}}}; known: {', '.join(HOOK_FIELDS)}",
            )
    return hooks
