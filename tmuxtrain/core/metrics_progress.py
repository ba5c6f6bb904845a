"""Where a run is and when it will end, for `tmuxtrain.core.metrics`: `_Progress` keeps the
epoch and step across lines, tells a per-epoch step counter from a global one, turns them
into a fraction of the whole run and a smoothed rate, hence the ETA (`eta_s` in `latest`).

Separate because it is the parser's one piece of state that reasons over time; it reads
only numbers (the metrics and hints of a line), never text.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from tmuxtrain.core.metrics_names import _PROGRESS_NAMES
from tmuxtrain.core.metrics_reading import _HINT_EPOCH_BASE, _HINT_LAST_INDEX, _HINT_PER_EPOCH

# The ETA's rate is the progress made over about this many seconds: long enough to ride
# out bursts of output, stalled data loaders and validation pauses, short enough to follow
# a real change of speed. It is measured from a few anchor points, so memory stays bounded.
ETA_WINDOW_S = 300.0
_ETA_ANCHORS = 32
_ANCHOR_GAP_S = ETA_WINDOW_S / _ETA_ANCHORS


class _Progress:
    """Where the job is (epoch, step) and how fast it moves; turns that into an ETA."""

    def __init__(self) -> None:
        self.epoch: float | None = None
        self.epochs: float | None = None
        self.step: float | None = None
        self.steps: float | None = None
        self.zero_based = False  # epochs counted from 0 (Lightning, timm) once we see an epoch 0
        self.per_epoch: bool | None = None  # does the step counter restart every epoch?
        self.per_epoch_seen = False  # per_epoch was observed, not guessed from the format
        self.step_read: float | None = None  # the last step read (`step` may be reset to 0)
        self.step_epoch: float | None = None  # the epoch when it was read
        self.summary = False  # the last epoch line also reported results (an epoch's end)
        self.value: float | None = None  # progress in [0, 1]
        self.head: tuple[float, float] | None = None  # (time, progress) of the last reading
        # earlier readings, at least ETA_WINDOW_S / _ETA_ANCHORS seconds apart
        self.anchors: deque[tuple[float, float]] = deque(maxlen=_ETA_ANCHORS + 2)
        self.rate: float | None = None  # progress per second over the window
        self.x: float | None = None  # where to plot readings now, see `_x`
        self.last_index = False  # `epochs` is the last epoch's index, not the count
        self.printed_eta: float | None = None  # the job's own whole-run ETA, if it prints one
        self.finished = False  # the job ended: no ETA any more

    def update(self, m: Mapping[str, float], hints: int, now: float) -> None:
        epoch, step = m.get("epoch"), m.get("step")
        if hints & _HINT_EPOCH_BASE:
            self.zero_based = True
            if hints & _HINT_LAST_INDEX:
                self.last_index = True
        if epoch is not None:
            if epoch == 0:
                self.zero_based = True
            if self.per_epoch and step is None and self.epoch is not None and epoch > self.epoch:
                # Keras: "Epoch 2/3" comes before the first step line of that epoch; the last
                # step read (1000/1000) belongs to the epoch before.
                self.step = 0.0
            self.epoch = epoch
            self.summary = step is None and not m.keys() <= _PROGRESS_NAMES  # no set built
        epochs, steps = m.get("epochs"), m.get("steps")
        if epochs:
            self.epochs = epochs
        if steps:
            self.steps = steps
        if hints & _HINT_PER_EPOCH and not self.per_epoch_seen:
            self.per_epoch = True
        if step is not None:
            if (
                self.step_read is not None
                and self.epoch is not None
                and self.step_epoch is not None
                and self.epoch > self.step_epoch
                and step != self.step_read
            ):
                # The epoch moved on since the last step reading: a restarted counter is
                # per-epoch, one that kept growing is global, whatever the format suggested.
                self.per_epoch = step < self.step_read
                self.per_epoch_seen = True
            self.step = self.step_read = step
            self.step_epoch = self.epoch
        self.x = self._x()
        self._advance(now)

    def _done_epochs(self) -> float:
        assert self.epoch is not None
        done = self.epoch - (0 if self.zero_based else 1)
        return 0.0 if done < 0.0 else done  # max(done, 0.0): no builtin call on this hot path

    def _x(self) -> float | None:
        """Where to plot a reading: a step that grows across epochs, else the epoch."""
        if self.step is not None:
            if self.per_epoch and self.steps and self.epoch is not None:
                return self._done_epochs() * self.steps + self.step
            return self.step
        return self.epoch

    def fraction(self) -> float | None:
        """Total progress in [0, 1]: (epochs done + step/steps) / epochs, or what is known."""
        epochs = self.epochs
        if epochs is not None and self.last_index:
            epochs += 1
        if self.step is not None and self.steps:
            frac = self.step / self.steps
            frac = 1.0 if frac > 1.0 else frac  # min(frac, 1.0), as below
            if self.per_epoch and self.epoch is not None and epochs:
                frac = (self._done_epochs() + frac) / epochs
                return 1.0 if frac > 1.0 else frac
            return frac
        if self.epoch is not None and epochs:
            if self.epoch != int(self.epoch):  # HF's fractional epoch already counts progress
                return min(self.epoch / epochs, 1.0)
            return min((self._done_epochs() + (1 if self.summary else 0)) / epochs, 1.0)
        return None

    def whole(self) -> bool:
        """Does `value` measure the whole run (not only the current epoch)?"""
        return self.value is not None and (not self.per_epoch or bool(self.epochs))

    def _advance(self, now: float) -> None:
        """Take a progress reading; the rate is the progress since the oldest anchor in the
        window over the time since then.

        A reading is stamped with the time its bytes were read, so output that comes in
        bursts (pipe-pane buffering, a stalled loader, a validation pass) looks like
        progress in steps; over a window of minutes those steps average out, where the rate
        of the last interval alone would swing between zero and many times the truth.
        """
        p = self.fraction()
        if p is None:
            return
        self.value = p
        head, anchors = self.head, self.anchors
        if head is not None and p < head[1]:
            # Progress went back (a per-epoch count with the number of epochs unknown):
            # measure afresh, keeping the last rate until there is a new one.
            anchors.clear()
            head = None
        if (
            head is not None
            and now > head[0]
            and (not anchors or head[0] - anchors[-1][0] >= _ANCHOR_GAP_S)
        ):
            anchors.append(head)  # the last reading of an earlier time
        t = now if head is None or not head[0] > now else head[0]  # max(), without the call
        self.head = (t, p)
        while len(anchors) > 1 and anchors[1][0] <= t - ETA_WINDOW_S:
            anchors.popleft()
        if anchors and t > anchors[0][0]:
            self.rate = (p - anchors[0][1]) / (t - anchors[0][0])

    def eta_s(self) -> float | None:
        """Seconds left at the smoothed rate, as of the last progress reading; the job's
        own printed ETA where the parser cannot tell the whole run's progress; None once
        the job ended."""
        if self.finished:
            return None
        if self.printed_eta is not None and not self.whole():
            return self.printed_eta
        p = self.value
        if p is None or self.rate is None:
            return None
        if p >= 1.0:
            return 0.0
        return (1.0 - p) / self.rate if self.rate > 0 else None
