"""`python -m tmuxtrain.daemon`: the scheduler process (`tmuxtrain up` starts it detached).

Its log (`TMUXTRAIN_HOME/scheduler.log`, rotated at 1 MiB, 3 kept) records each start with
its GPUs, each adoption after a restart, each end, and every stop with its cause.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.daemon.loop import Scheduler
from tmuxtrain.daemonctl import AlreadyRunning
from tmuxtrain.runners.base import Runner
from tmuxtrain.settings import Settings, from_env

LOG_BYTES = 2**20
LOG_KEEP = 3


class _Rotating(logging.handlers.RotatingFileHandler):
    """Rotates, and moves stderr along to the new file (a crash's traceback lands there)."""

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None and not os.isatty(2):
            os.dup2(self.stream.fileno(), 2)


def setup_logging(settings: Settings) -> None:
    handler: logging.Handler
    if os.isatty(2):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = _Rotating(settings.scheduler_log, maxBytes=LOG_BYTES, backupCount=LOG_KEEP)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def build(settings: Settings) -> Scheduler:
    """The scheduler for `settings`, with its config, store, runner and GPU probe."""
    from tmuxtrain.gpus import open_probe
    from tmuxtrain.jobfile import load_config
    from tmuxtrain.runners.multi import MultiRunner
    from tmuxtrain.runners.slurm_runner import SlurmOptions, SlurmRunner
    from tmuxtrain.runners.tmux_runner import TmuxRunner
    from tmuxtrain.store import Store

    config = load_config(settings.config_path)
    probe = open_probe(settings.gpus, base_dir=settings.home)

    def make(name: str) -> Runner:
        if name == "slurm":
            return SlurmRunner(settings, SlurmOptions.from_config(config.slurm))
        raise TmuxtrainError(f"no runner named {name!r}")

    runner = MultiRunner(TmuxRunner(settings), make)
    return Scheduler(settings, config, Store(settings.db_path, full_check=True), runner, probe)


def main() -> int:
    settings = from_env()
    settings.ensure_dirs()
    setup_logging(settings)
    log = logging.getLogger("tmuxtrain.daemon")
    try:
        sched = build(settings)
        log.info(
            "scheduler %s started for %s (GPUs: %s; config: %s)",
            os.getpid(), settings.home, sched.probe.note or sched.probe.kind,
            settings.config_path or "defaults",
        )  # fmt: skip
        why = sched.run()
    except AlreadyRunning as e:
        print(f"tmuxtrain: {e}", file=sys.stderr)
        return 0
    except TmuxtrainError as e:
        log.error("scheduler stopped: %s", e)
        return e.exit_code
    except BaseException as e:
        log.exception("scheduler stopped: %s", e.__class__.__name__)
        raise
    log.info("scheduler stopped (%s); running jobs keep running", why)
    return 0


def run() -> None:
    sys.exit(main())
