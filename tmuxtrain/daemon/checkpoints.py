"""The checkpoint watcher: a new checkpoint of a job, once complete, gets an evaluation job.

A checkpoint is a file or a directory matching the job's glob (Hugging Face saves
`checkpoint-500/`). It is complete once it has stopped changing (`core.checkpoints.settle`:
its size and newest mtime, over every file inside for a directory), a Hugging Face one only
once `trainer_state.json` is in it. A symlink stands for its target (Lightning's
`save_last: link`): the target is evaluated, once, under its own name. A file rewritten in
place (Lightning's `last.ckpt`) is a new version each time it settles with another size or
mtime; a directory is evaluated once, since an evaluation may write its results into it.
Watched while its job runs and for a few seconds after it ended (for the last one), longer
while one is still settling. Each version is evaluated once, across restarts too: the store
refuses a second record of it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import stat
from collections.abc import Collection, Iterable

from tmuxtrain.core.checkpoints import Seen, dir_complete, eval_spec, is_rewrite, settle
from tmuxtrain.core.model import FINISHED, Job, JobState
from tmuxtrain.settings import Settings
from tmuxtrain.store import Store
from tmuxtrain.store.checkpoints import add_checkpoint_eval, open_evaluations

log = logging.getLogger("tmuxtrain.daemon")
CHECKPOINT_AFTER_S = 10.0  # keep watching a finished job's checkpoints this long
# New matches one scan may find: more at once is a pattern that matches a whole tree (a
# run's outputs, a dataset), not checkpoints written one by one; none of them is queued.
MAX_NEW_MATCHES = 32


Known = dict[str, tuple[int, tuple[int, float] | None]]  # path: latest version, (size, mtime)


def fingerprint(path: str) -> tuple[tuple[int, float], bool] | None:
    """(size, newest mtime) of a checkpoint and whether it is a directory; None when it is
    neither a file nor a directory that may be complete (an unfinished Hugging Face one)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return (st.st_size, st.st_mtime), False
    if not stat.S_ISDIR(st.st_mode):
        return None
    size, mtime, top = 0, st.st_mtime, []
    for root, dirs, files in os.walk(path):
        if root == path:
            top = files
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):
                sub = os.lstat(os.path.join(root, name))
                mtime = max(mtime, sub.st_mtime)
                if stat.S_ISREG(sub.st_mode):
                    size += sub.st_size
    if not dir_complete(os.path.basename(path), top):
        return None
    return (size, mtime), True


def link_target(path: str) -> str:
    """Where a symlink points, through links in turn, with the folders above it as the glob
    spelled them (not os.path.realpath's): so a target matched by the glob as well is the
    same path, and paths recorded before keep their spelling."""
    for _ in range(8):
        try:
            path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
        except OSError:
            break
    return path


class CheckpointWatcher:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.known: dict[int, Known] = {}
        self.seen: dict[int, dict[str, Seen]] = {}
        self.dirs: dict[int, set[str]] = {}  # directories seen: evaluated once, never again
        self.refused: set[int] = set()  # jobs whose pattern matched too much: not watched

    def watch(self, now: float) -> bool:
        """Scan the watched jobs' globs; True when an evaluation job was queued."""
        queued = False
        watching = self.store.jobs(
            [JobState.RUNNING, *FINISHED],
            with_checkpoints=True,
            finished_after=now - CHECKPOINT_AFTER_S,
        )
        settling = {k for k, v in self.seen.items() if v} - {j.id for j in watching}
        if settling:  # finished a while ago, but its last checkpoint is not complete yet
            watching += self.store.jobs(ids=settling)
        live = {j.id for j in watching}
        self.known = {k: v for k, v in self.known.items() if k in live}
        self.seen = {k: v for k, v in self.seen.items() if k in live}
        self.dirs = {k: v for k, v in self.dirs.items() if k in live}
        self.refused &= live
        for job in watching:
            if job.id not in self.refused:
                queued |= self._scan(job, now)
        return queued

    def _scan(self, job: Job, now: float) -> bool:
        ck = job.spec.checkpoints
        if ck is None:
            return False
        known = self.known.get(job.id)
        if known is None:
            known = self.known[job.id] = self.store.history.checkpoint_versions(job.id)
        dirs = self.dirs.setdefault(job.id, set())
        observed: dict[str, tuple[int, float]] = {}
        for match in glob.iglob(os.path.join(job.spec.cwd, ck.watch)):
            path = link_target(match) if os.path.islink(match) else match.rstrip("/")
            if path in observed or path in dirs:
                continue
            if len(observed) >= MAX_NEW_MATCHES and path not in known:
                self._refuse(job.id, ck.watch, now)  # no need to walk the rest of the tree
                return False
            got = fingerprint(path)
            if got is None:
                continue
            current, is_dir = got
            if is_dir:
                if path in known:
                    dirs.add(path)
                    continue
            elif path in known:
                version, recorded = known[path]
                if recorded is None:  # recorded before versions: take it as this one
                    known[path] = (version, current)
                if not is_rewrite(known[path][1], current):
                    continue
            observed[path] = current
        seen, ready = settle(self.seen.get(job.id, {}), observed, now)
        self.seen[job.id] = seen
        queued = False
        for path in ready:
            version = known[path][0] + 1 if path in known else 1
            current = observed[path]
            known[path] = (version, current)
            eval_id = add_checkpoint_eval(
                self.store,
                job.id,
                path,
                version,
                current,
                eval_spec(job.spec, path, version),
                self.store.env_of(job.id),
                now,
                self.settings.logs_dir,
            )
            if eval_id is not None:
                log.info("job %s: checkpoint %s -> evaluation job %s", job.id, path, eval_id)
                queued = True
        return queued

    def evaluations_open(
        self, ids: Iterable[int], now: float, draining: Collection[int] = ()
    ) -> dict[int, int]:
        """How many checkpoint evaluations of each of these jobs are still to come or to end:
        its pending and running evaluation jobs and those whose scores are still being read
        (`draining`), plus one while its checkpoints are still watched (it runs, it ended
        less than CHECKPOINT_AFTER_S ago, one is settling)."""
        wanted = set(ids)
        out = open_evaluations(self.store, wanted, draining)
        for job in self.store.jobs(ids=wanted):
            if job.spec.checkpoints is None:
                continue
            ended = job.finished_at is not None and job.state.finished
            if (
                not ended
                or now - (job.finished_at or now) < CHECKPOINT_AFTER_S
                or self.seen.get(job.id)
            ):
                out[job.id] = out.get(job.id, 0) + 1
        return out

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
