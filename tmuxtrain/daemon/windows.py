"""The window keeper: the newest `keep_finished_windows` finished windows stay for reading,
older ones are closed. A window whose last output is not in the log yet stays until it is:
closing it would lose that output."""

from __future__ import annotations

from collections.abc import Collection

from tmuxtrain.core.model import Config
from tmuxtrain.runners.base import Runner
from tmuxtrain.store import Store
from tmuxtrain.store.windows import finished_windows, forget_windows


class WindowKeeper:
    def __init__(self, store: Store, runner: Runner, config: Config) -> None:
        self.store = store
        self.runner = runner
        self.config = config
        self.due = True  # trim at the next chance

    def trim(self, draining: Collection[int]) -> None:
        """Close finished windows beyond the newest `keep_finished_windows`; those of jobs
        still draining stay, and `due` says to come back once they are drained."""
        self.due = False
        done = finished_windows(self.store)
        excess = done[: max(0, len(done) - self.config.keep_finished_windows)]
        if any(job_id in draining for job_id, _ in excess):
            excess = [(job_id, w) for job_id, w in excess if job_id not in draining]
            self.due = True
        if excess:
            self.runner.close_windows([w for _, w in excess])
            forget_windows(self.store, [job_id for job_id, _ in excess])
