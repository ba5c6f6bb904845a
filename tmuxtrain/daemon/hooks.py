"""The hook runner: the config's and the job's commands on `started`, `succeeded`,
`failed`, `retrying` (and `cancelled`), and desktop notifications. A failing hook is
logged to `hooks.log` and never stops the scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess

from tmuxtrain.core.model import Config, Job
from tmuxtrain.core.spec import HOOK_FIELDS, fill
from tmuxtrain.settings import Settings

log = logging.getLogger("tmuxtrain.daemon")
MAX_HOOKS = 64  # running hook processes; more are skipped with a note


class HookRunner:
    def __init__(self, config: Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.running: list[subprocess.Popen[bytes]] = []

    def fire(self, job: Job, event: str, code: int | None) -> None:
        """Run the hooks for `event`. `{field}` in a hook becomes a reference to an
        environment variable, so a job name with shell characters is never executed."""
        commands = [c for c in (self.config.hooks.get(event), job.spec.hooks.get(event)) if c]
        notify = (
            self.config.notify and event in ("succeeded", "failed") and shutil.which("notify-send")
        )
        if notify:
            self._spawn(["notify-send", f"tmuxtrain: job {job.id} {event}", job.name], None, None)
        if not commands:
            return
        env = dict(os.environ)
        fields = {
            "id": str(job.id),
            "name": job.name,
            "state": event,
            "exit_code": "" if code is None else str(code),
            "attempt": str(job.attempt),
            "log": job.log_path,
            "project": job.spec.project,
            "gpus": ",".join(map(str, job.gpus)),
        }
        assert set(fields) == set(HOOK_FIELDS)
        for k, v in fields.items():
            env[f"TMUXTRAIN_JOB_{k.upper()}"] = v
        for command in commands:
            try:
                shell = fill(
                    command, {k: f'"${{TMUXTRAIN_JOB_{k.upper()}}}"' for k in fields}, KeyError
                )
            except KeyError as e:
                log.warning("hook %s for job %s: unknown field %s", event, job.id, e)
                continue
            cwd = job.spec.cwd if os.path.isdir(job.spec.cwd) else None
            self._spawn(["/bin/sh", "-c", shell], env, cwd, log_to=self.settings.hooks_log)

    def _spawn(
        self,
        argv: list[str],
        env: dict[str, str] | None,
        cwd: str | None,
        log_to: str | None = None,
    ) -> None:
        self.reap()
        if len(self.running) >= MAX_HOOKS:
            log.warning("%d hooks still run: skipping %s", len(self.running), argv[-1][:80])
            return
        try:
            out = open(log_to, "ab") if log_to else None  # noqa: SIM115 - passed to the child
        except OSError as e:
            log.warning("hook not run: %s", e)
            return
        try:
            with contextlib.suppress(OSError):
                self.running.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=out or subprocess.DEVNULL,
                        stderr=out or subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        finally:
            if out is not None:
                out.close()

    def reap(self) -> None:
        self.running = [p for p in self.running if p.poll() is None]
