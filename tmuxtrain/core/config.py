"""config.yaml's document -> a validated `Config`, with file:line errors. Pure."""

from __future__ import annotations

from typing import Any

from tmuxtrain.core.model import Config
from tmuxtrain.core.validate import (
    HOOK_EVENTS,
    Ctx,
    LDict,
    duration_field,
    expect,
    hooks_field,
    int_field,
    mapping_field,
    size_field,
    str_field,
    type_name,
    unknown_keys,
)

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
    "max_running",
    "max_cpu_jobs",
    "project_limits",
    "gpus",
    "keep_free",
    "fair_share_half_life",
    "preempt_after",
)
SLURM_KEYS = ("partition", "account", "extra", "log_dir", "array_limit", "requeue")
POLICIES = ("fifo", "priority", "fair-share")
PLACEMENTS = ("spread", "pack")
RUNNERS = ("tmux", "slurm")


def parse_config(doc: Any, path: str) -> Config:
    """Validate config.yaml; absent keys keep Config's defaults."""
    ctx = Ctx(path)
    if doc is None:
        return Config()
    if not isinstance(doc, dict):
        raise ctx.fail(
            getattr(doc, "line", None), None, f"expected a mapping, got {type_name(doc)}"
        )
    doc = doc if isinstance(doc, LDict) else LDict(doc)
    unknown_keys(ctx, doc, CONFIG_KEYS, "")
    kw: dict[str, Any] = {}
    if "policy" in doc:
        kw["policy"] = str_field(ctx, doc, "policy", "policy")
        if kw["policy"] not in POLICIES:
            raise ctx.fail(doc.line_of("policy"), "policy", f"must be one of {', '.join(POLICIES)}")
    if "runner" in doc:
        kw["runner"] = str_field(ctx, doc, "runner", "runner")
        if kw["runner"] not in RUNNERS:
            raise ctx.fail(doc.line_of("runner"), "runner", f"must be one of {', '.join(RUNNERS)}")
    if "placement" in doc:
        kw["placement"] = str_field(ctx, doc, "placement", "placement")
        if kw["placement"] not in PLACEMENTS:
            raise ctx.fail(doc.line_of("placement"), "placement", "must be spread or pack")
    if "notify" in doc:
        kw["notify"] = expect(ctx, doc, "notify", "notify", (bool,), "true or false")
    if "backfill" in doc:
        kw["backfill"] = expect(ctx, doc, "backfill", "backfill", (bool,), "true or false")
    if "headroom" in doc:
        kw["headroom_mib"] = (
            0 if doc["headroom"] in (0, "0") else size_field(ctx, doc, "headroom", "headroom")
        )
    if "max_jobs_per_gpu" in doc:
        kw["max_jobs_per_gpu"] = int_field(
            ctx, doc, "max_jobs_per_gpu", "max_jobs_per_gpu", 1, 1000
        )
    if "keep_finished_windows" in doc:
        kw["keep_finished_windows"] = int_field(
            ctx, doc, "keep_finished_windows", "keep_finished_windows", 0, 10**6
        )
    if "retry_backoff" in doc:
        kw["retry_backoff_s"] = (
            0.0
            if doc["retry_backoff"] in (0, "0")
            else duration_field(ctx, doc, "retry_backoff", "retry_backoff")
        )
    if "cancel_grace" in doc:
        kw["cancel_grace_s"] = duration_field(ctx, doc, "cancel_grace", "cancel_grace")
    if "shares" in doc:
        sdoc = mapping_field(ctx, doc, "shares", "shares")
        shares = {}
        for key in sdoc:
            value = expect(ctx, sdoc, key, f"shares.{key}", (int, float), "a number")
            if value <= 0:
                raise ctx.fail(sdoc.line_of(key), f"shares.{key}", "must be more than 0")
            shares[str(key)] = float(value)
        kw["shares"] = shares
    if "hooks" in doc:
        hdoc = mapping_field(ctx, doc, "hooks", "hooks")
        unknown_keys(ctx, hdoc, HOOK_EVENTS, "hooks.")
        kw["hooks"] = hooks_field(ctx, hdoc, "hooks.")
    if "slurm" in doc:
        sdoc = mapping_field(ctx, doc, "slurm", "slurm")
        unknown_keys(ctx, sdoc, SLURM_KEYS, "slurm.")
        kw["slurm"] = dict(sdoc)
    kw.update(_limits(ctx, doc))
    return Config(**kw)


def _limits(ctx: Ctx, doc: LDict) -> dict[str, Any]:
    """How much tmuxtrain may use: job limits, which GPUs, fair-share and preemption."""
    kw: dict[str, Any] = {}
    for key in ("max_running", "max_cpu_jobs"):
        if key in doc:
            kw[key] = int_field(ctx, doc, key, key, 1, 10**6)
    if "project_limits" in doc:
        pdoc = mapping_field(ctx, doc, "project_limits", "project_limits")
        kw["project_limits"] = {
            str(k): int_field(ctx, pdoc, k, f"project_limits.{k}", 1, 10**6) for k in pdoc
        }
    if "gpus" in doc:
        value = doc["gpus"]
        items = value if isinstance(value, list) else None
        if (
            items is None
            or not items
            or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in items)
        ):
            raise ctx.fail(
                doc.line_of("gpus"), "gpus", "expected a list of GPU indices, e.g. [1, 2, 3]"
            )
        if len(set(items)) != len(items):
            raise ctx.fail(doc.line_of("gpus"), "gpus", "lists a GPU twice")
        kw["gpus"] = tuple(sorted(items))
    if "keep_free" in doc:
        kw["keep_free"] = int_field(ctx, doc, "keep_free", "keep_free", 0, 64)
    if "fair_share_half_life" in doc:
        kw["fair_share_half_life_s"] = duration_field(
            ctx, doc, "fair_share_half_life", "fair_share_half_life"
        )
    if "preempt_after" in doc:
        kw["preempt_after_s"] = duration_field(ctx, doc, "preempt_after", "preempt_after")
    return kw
