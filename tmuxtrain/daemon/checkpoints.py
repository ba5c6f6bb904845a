"""The checkpoint watcher: a new checkpoint of a job, once complete, gets an evaluation job.

A checkpoint is complete once it has stopped changing (`core.checkpoints.settle`). It is
watched while its job runs and for a few seconds after it ended (for the last one). Each
path is evaluated once, across restarts too: the store refuses a second record of it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import stat

from tmuxtrain.core.checkpoints import Seen, eval_spec, settle
from tmuxtrain.core.model import FINISHED, JobState
from tmuxtrain.settings import Settings
from tmuxtrain.store import Store

log = logging.getLogger("tmuxtrain.daemon")
CHECKPOINT_AFTER_S = 10.0  # keep watching a finished job's checkpoints this long
# New matches one scan may find: more at once is a pattern that matches a whole tree (a
# run's outputs, a dataset), not checkpoints written one by one; none of them is queued.
MAX_NEW_MATCHES = 32


class CheckpointWatcher:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.known: dict[int, set[str]] = {}
        self.seen: dict[int, dict[str, Seen]] = {}
        self.refused: set[int] = set()  # jobs whose pattern matched too much: not watched

    def watch(self, now: float) -> bool:
        """Scan the watched jobs' globs; True when an evaluation job was queued."""
        queued = False
        watching = self.store.jobs(
            [JobState.RUNNING, *FINISHED],
            with_checkpoints=True,
            finished_after=now - CHECKPOINT_AFTER_S,
        )
        live = {j.id for j in watching}
        self.known = {k: v for k, v in self.known.items() if k in live}
        self.seen = {k: v for k, v in self.seen.items() if k in live}
        self.refused &= live
        for job in watching:
            ck = job.spec.checkpoints
            if ck is None or job.id in self.refused:
                continue
            known = self.known.get(job.id)
            if known is None:
                known = self.known[job.id] = self.store.history.checkpoint_paths(job.id)
            observed: dict[str, tuple[int, float]] = {}
            for path in glob.iglob(os.path.join(job.spec.cwd, ck.watch)):
                if path not in known:
                    with contextlib.suppress(OSError):
                        st = os.stat(path)
                        if stat.S_ISREG(st.st_mode):
                            observed[path] = (st.st_size, st.st_mtime)
                if len(observed) > MAX_NEW_MATCHES:  # no need to walk the rest of the tree
                    self._refuse(job.id, ck.watch, now)
                    break
            if job.id in self.refused:
                continue
            seen, ready = settle(self.seen.get(job.id, {}), observed, now)
            self.seen[job.id] = seen
            for path in ready:
                known.add(path)
                eval_id = self.store.add_checkpoint_eval(
                    job.id,
                    path,
                    eval_spec(job.spec, path),
                    self.store.env_of(job.id),
                    now,
                    self.settings.logs_dir,
                )
                if eval_id is not None:
                    log.info("job %s: checkpoint %s -> evaluation job %s", job.id, path, eval_id)
                    queued = True
        return queued

    def _refuse(self, job_id: int, pattern: str, now: float) -> None:
        """Too many new matches at once: none is queued, the job says why, and its
        pattern is not scanned again (a restarted scheduler finds the same and says so)."""
        self.refused.add(job_id)
        self.seen.pop(job_id, None)
        note = (
            f"checkpoints: '{pattern}' matched more than {MAX_NEW_MATCHES} new files at once,"
            " so none was evaluated: watch a narrower pattern"
        )
        log.warning("job %s: %s", job_id, note)
        self.store.add_notes(job_id, [note], now)
