"""Submitting jobs: job files and ad-hoc commands, validated, their dependencies resolved
(names in the same submission first), inserted in one transaction."""

from __future__ import annotations

import builtins
import dataclasses
import os
import shlex
import time
from collections.abc import Sequence
from typing import Any

from tmuxtrain.api.base import ClientBase
from tmuxtrain.core.checkpoints import evals_ref
from tmuxtrain.core.errors import NotStarted, SpecError, TmuxtrainError
from tmuxtrain.core.model import Config, GpuInfo, JobSpec
from tmuxtrain.core.units import format_mib

ADHOC = "<command line>"
FORCE = " (add --force to queue it anyway)"
INTERPRETERS = {
    "python",
    "python3",
    "bash",
    "sh",
    "torchrun",
    "accelerate",
    "deepspeed",
    "uv",
    "srun",
}


def _spec_error(spec: JobSpec, field: str, message: str) -> SpecError:
    path, _, line = spec.source.rpartition(":")
    return SpecError(path or spec.source, int(line) if line.isdigit() else None, field, message)


def _check_patterns(specs: Sequence[JobSpec]) -> None:
    """A job's own patterns must compile and must not backtrack without end: they run in
    the scheduler (time-bounded there too, see tmuxtrain.patterns)."""
    from tmuxtrain.patterns import check

    seen: set[tuple[str, str | None]] = set()
    for spec in specs:
        todo: list[tuple[str, str, str | None]]
        todo = [(f"metrics.{k}", p, "value") for k, p in spec.metrics.items()]
        todo += [("retry_on", p, None) for p in spec.retry_on]
        for field, pattern, group in todo:
            if (pattern, group) in seen:
                continue  # a matrix repeats the same patterns
            seen.add((pattern, group))
            why = check(pattern, group=group)
            if why:
                raise _spec_error(spec, field, why)


def adhoc_name(argv: Sequence[str]) -> str:
    """A readable default name for `add -- CMD`: the script, not the interpreter."""
    words = list(argv)
    if len(words) == 1:
        words = shlex.split(words[0]) if words[0].strip() else ["job"]
    for w in words:
        base = os.path.basename(w)
        if base and base not in INTERPRETERS and not w.startswith("-"):
            return os.path.splitext(base)[0] or base
    return os.path.basename(words[0]) or "job"


class Submitting(ClientBase):
    # ---- submitting -------------------------------------------------------------------

    def add_files(
        self,
        paths: Sequence[str],
        overrides: dict[str, Any] | None = None,
        *,
        start: bool = True,
        force: bool = False,
    ) -> list[int]:
        """Queue every job of every file; nothing is queued if any file has a bad job, or
        one this machine can never run (unless `force`)."""
        from tmuxtrain.jobfile import load_jobs

        specs: list[JobSpec] = []
        for path in paths:
            specs.extend(load_jobs(path, overrides))
        return self.add_specs(specs, start=start, force=force)

    def add_command(
        self,
        command: str | Sequence[str],
        overrides: dict[str, Any] | None = None,
        *,
        start: bool = True,
        force: bool = False,
        **opts: Any,
    ) -> list[int]:
        """Queue one ad-hoc command (a shell string, or argv to be quoted)."""
        from tmuxtrain.core.spec import parse_jobs
        from tmuxtrain.jobfile import apply_overrides

        argv = [command] if isinstance(command, str) else list(command)
        if not argv or not " ".join(argv).strip():
            raise SpecError(ADHOC, None, "command", "is empty: give a command after --")
        text = argv[0] if len(argv) == 1 else shlex.join(argv)
        doc: dict[str, Any] = {"command": text, "name": adhoc_name(argv)}
        doc = apply_overrides(doc, {**(overrides or {}), **opts})
        for key in ("command", "name"):  # no matrix here: braces are the user's, literally
            if isinstance(doc.get(key), str):
                doc[key] = doc[key].replace("{", "{{").replace("}", "}}")
        cwd = os.getcwd()
        specs = parse_jobs(doc, ADHOC, cwd, default_name=doc["name"], home=os.path.expanduser("~"))
        return self.add_specs(specs, start=start, force=force)

    def add_specs(
        self,
        specs: Sequence[JobSpec],
        *,
        start: bool = True,
        parent_id: int | None = None,
        force: bool = False,
    ) -> list[int]:
        """Resolve dependencies (names in this batch first, then existing jobs) and insert.

        The config is read first: a bad one queues nothing. A request this machine can
        never run (more GPUs than tmuxtrain may use, more memory than its largest GPU, a
        missing `cwd`) is refused unless `force`. When the jobs were queued but the
        scheduler does not start, NotStarted carries their ids."""
        from tmuxtrain.jobenv import submit_environment

        config = self.config()
        # Where each job runs is decided now: its own `runner:`, else the config's.
        specs = [s if s.runner else dataclasses.replace(s, runner=config.runner) for s in specs]
        _check_patterns(specs)
        if not force:
            self._refuse_what_cannot_run(specs, config)
        given = list(specs)
        specs = self._dependency_order(given)
        batch = {s.name: i for i, s in enumerate(specs)}
        items: list[tuple[JobSpec, tuple[int, ...]]] = []
        evals: list[tuple[int, ...]] = []
        # Ids of this batch are not known before insert: -(k+1) stands for its k-th job.
        for spec in specs:
            deps, of_evals = [], []
            for ref in spec.after:
                base = evals_ref(ref.strip())
                target = ref if base is None else base
                if target in batch and target != spec.name:
                    dep = -(batch[target] + 1)
                    has_checkpoints = base is None or specs[batch[target]].checkpoints is not None
                else:
                    try:
                        dep = self.dependency_id(target)
                    except TmuxtrainError as e:
                        raise _spec_error(spec, "after", str(e)) from None
                    has_checkpoints = base is None or bool(self.store.get(dep).spec.checkpoints)
                if not has_checkpoints:
                    msg = f"'{ref}': job '{target}' has no checkpoints: to evaluate"
                    raise _spec_error(spec, "after", msg)
                deps.append(dep)
                if base is not None:
                    of_evals.append(dep)
            items.append((spec, tuple(deps)))
            evals.append(tuple(of_evals))
        env = submit_environment(True)
        minimal = submit_environment(False)
        rows = [(spec, deps, env if spec.inherit_env else minimal) for spec, deps in items]
        inserted = self.store.add_jobs(
            rows, time.time(), self.settings.logs_dir, parent_id, evals if any(evals) else None
        )
        by_spec = {id(s): i for s, i in zip(specs, inserted, strict=True)}
        ids = [by_spec[id(s)] for s in given]  # in the order the files gave them
        if start:
            try:
                self.ensure_scheduler()
            except TmuxtrainError as e:
                raise NotStarted(ids, f"queued, but {e}") from None
        return ids

    def _refuse_what_cannot_run(self, specs: Sequence[JobSpec], config: Config) -> None:
        """A SpecError for the first job this machine can never run: more GPUs than
        tmuxtrain may use here, more memory per GPU than the largest one has after
        headroom, or a folder that does not exist."""
        gpus: builtins.list[GpuInfo] | None = None
        for spec in specs:
            if not os.path.isdir(spec.cwd):
                raise _spec_error(spec, "cwd", f"no such folder {spec.cwd}{FORCE}")
            if spec.gpus == 0 or spec.runner == "slurm" or config.runner == "slurm":
                continue
            if gpus is None:
                gpus = self._usable_gpus(config)
                if gpus is None:
                    return  # the GPUs cannot be read now: the scheduler will say
            may = len(gpus) - config.keep_free
            if not gpus:
                msg = f"{spec.gpus} requested, tmuxtrain may use no GPU here (gpus: 0 runs on CPU)"
                raise _spec_error(spec, "gpus", msg + FORCE)
            if spec.gpus > may:
                have = f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
                kept = f", {config.keep_free} kept free" if config.keep_free else ""
                msg = f"{spec.gpus} requested, tmuxtrain may use {have} here{kept}"
                raise _spec_error(spec, "gpus", msg + FORCE)
            biggest = max((g.memory_total_mib or 0) for g in gpus) - config.headroom_mib
            if spec.vram_mib is not None and spec.vram_mib > biggest:
                msg = (
                    f"{format_mib(spec.vram_mib)} per GPU, the largest GPU here has "
                    f"{format_mib(max(biggest, 0))} after headroom"
                )
                raise _spec_error(spec, "vram", msg + FORCE)

    def _usable_gpus(self, config: Config) -> builtins.list[GpuInfo] | None:
        """The GPUs the scheduler may use (its source, config `gpus:`, the
        CUDA_VISIBLE_DEVICES it runs with: ours when it is not running yet); None when
        they cannot be read."""
        from tmuxtrain.core.allocate import usable
        from tmuxtrain.daemonctl import gpu_source_for, scheduler_info
        from tmuxtrain.gpus import open_probe

        info = scheduler_info(self.settings.lock_path)
        visible = (
            info.get("cuda_visible_devices") if info else os.environ.get("CUDA_VISIBLE_DEVICES")
        )
        try:
            probe = open_probe(gpu_source_for(self.settings), base_dir=os.getcwd())
        except (TmuxtrainError, ValueError):
            return None
        try:
            snapshot = probe.probe()
        except TmuxtrainError:
            return None
        finally:
            probe.close()
        return usable(snapshot, config.gpus, visible if isinstance(visible, str) else None)

    @staticmethod
    def _dependency_order(specs: Sequence[JobSpec]) -> builtins.list[JobSpec]:
        """Jobs of one submission with each after the jobs of the batch it depends on (so a
        file may list `evaluate` before `train`); a cycle is a SpecError."""
        names = {s.name for s in specs}
        out: builtins.list[JobSpec] = []
        placed: set[str] = set()
        pending = list(specs)

        def target(ref: str) -> str:
            return evals_ref(ref.strip()) or ref

        while pending:
            ready = [
                s
                for s in pending
                if all(
                    d in placed or d not in names or d == s.name
                    for d in (target(r) for r in s.after)
                )
            ]
            if not ready:
                cycle = ", ".join(s.name for s in pending)
                raise _spec_error(pending[0], "after", f"dependency cycle among: {cycle}")
            out += ready
            placed.update(s.name for s in ready)
            pending = [s for s in pending if s.name not in placed]
        return out

    def export_sbatch(
        self,
        files: Sequence[str],
        overrides: dict[str, Any] | None,
        *,
        out: str,
        submit: bool = True,
        **opts: Any,
    ) -> builtins.list[str]:
        """Write the files' jobs as sbatch scripts under `out` (and submit them in order):
        the scripts' paths, or `SLURM_ID<TAB>NAME` for each submitted job."""
        from tmuxtrain.jobfile import load_jobs
        from tmuxtrain.runners import slurm

        config = self.config()
        options = slurm.SlurmOptions.from_config(config.slurm, **opts)
        specs = [s for path in files for s in load_jobs(path, overrides)]
        plan = slurm.plan(specs, options, out)
        slurm.write(plan)
        if not submit:
            return [path for _, path, _ in plan.scripts]
        return [f"{job_id}\t{name}" for name, job_id in slurm.submit(plan).items()]
