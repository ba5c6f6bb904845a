"""A small, real training script for tmuxtrain demos and tests (standard library only).

Trains a 2-layer MLP (2 -> 16 tanh -> 1 sigmoid) with minibatch SGD on a synthetic,
seeded 2-D binary classification set, and prints progress the way real training scripts do:
a tqdm-like bar redrawn with ``\\r`` on a terminal, plain ``step``/``epoch`` lines otherwise.

    python3 train_example.py --epochs 5 --steps 50 --lr 0.05 --seed 0 --out runs/demo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

HIDDEN = 16
BATCH = 32
N_TRAIN = 1024
N_VAL = 512
LABEL_NOISE = 0.05
LOG_EVERY = 10
BAR_WIDTH = 10

Sample = tuple[float, float, int]


def make_dataset(seed: int, split: str, n: int) -> list[Sample]:
    """Points in [-2, 2]^2 labelled by a curved boundary, with a little label noise."""
    rng = random.Random(f"tmuxtrain-example-{seed}-{split}")
    data: list[Sample] = []
    for _ in range(n):
        x1, x2 = rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0)
        label = 1 if x2 > 0.6 * math.sin(2.0 * x1) + 0.3 * x1 else 0
        if rng.random() < LABEL_NOISE:
            label = 1 - label
        data.append((x1, x2, label))
    return data


def validation_set(seed: int) -> list[Sample]:
    """The validation split for ``seed`` (shared with eval_example.py)."""
    return make_dataset(seed, "val", N_VAL)


@dataclass
class MLP:
    """2 -> HIDDEN (tanh) -> 1 (sigmoid) network with plain Python lists for weights."""

    w1: list[list[float]] = field(default_factory=list)  # HIDDEN x 2
    b1: list[float] = field(default_factory=list)
    w2: list[float] = field(default_factory=list)
    b2: float = 0.0

    @classmethod
    def init(cls, seed: int) -> MLP:
        """Xavier-style random initialisation from ``seed``."""
        rng = random.Random(f"tmuxtrain-example-{seed}-init")
        s1, s2 = math.sqrt(1.0 / 2), math.sqrt(1.0 / HIDDEN)
        return cls(
            w1=[[rng.gauss(0.0, s1), rng.gauss(0.0, s1)] for _ in range(HIDDEN)],
            b1=[0.0] * HIDDEN,
            w2=[rng.gauss(0.0, s2) for _ in range(HIDDEN)],
            b2=0.0,
        )

    def forward(self, x1: float, x2: float) -> tuple[list[float], float]:
        """Hidden activations and the output probability for one point."""
        h = [math.tanh(w[0] * x1 + w[1] * x2 + b) for w, b in zip(self.w1, self.b1, strict=True)]
        z = sum(wi * hi for wi, hi in zip(self.w2, h, strict=True)) + self.b2
        return h, 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def sgd_step(self, batch: list[Sample], lr: float) -> float:
        """One SGD step on ``batch`` with binary cross-entropy; returns the batch loss."""
        gw1 = [[0.0, 0.0] for _ in range(HIDDEN)]
        gb1 = [0.0] * HIDDEN
        gw2 = [0.0] * HIDDEN
        gb2 = 0.0
        loss = 0.0
        for x1, x2, y in batch:
            h, p = self.forward(x1, x2)
            loss += bce(p, y)
            dz = p - y
            gb2 += dz
            for j in range(HIDDEN):
                gw2[j] += dz * h[j]
                dh = dz * self.w2[j] * (1.0 - h[j] * h[j])
                gw1[j][0] += dh * x1
                gw1[j][1] += dh * x2
                gb1[j] += dh
        n = len(batch)
        for j in range(HIDDEN):
            self.w1[j][0] -= lr * gw1[j][0] / n
            self.w1[j][1] -= lr * gw1[j][1] / n
            self.b1[j] -= lr * gb1[j] / n
            self.w2[j] -= lr * gw2[j] / n
        self.b2 -= lr * gb2 / n
        return loss / n

    def evaluate(self, data: list[Sample]) -> tuple[float, float]:
        """Mean loss and accuracy on ``data``."""
        loss, correct = 0.0, 0
        for x1, x2, y in data:
            _, p = self.forward(x1, x2)
            loss += bce(p, y)
            correct += int((p >= 0.5) == (y == 1))
        return loss / len(data), correct / len(data)

    def to_dict(self) -> dict[str, object]:
        """The weights as JSON-ready data."""
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> MLP:
        """Rebuild a model from :meth:`to_dict` output."""
        w1 = [[float(a), float(b)] for a, b in d["w1"]]  # type: ignore[attr-defined]
        b1 = [float(v) for v in d["b1"]]  # type: ignore[attr-defined]
        w2 = [float(v) for v in d["w2"]]  # type: ignore[attr-defined]
        if not (len(w1) == len(b1) == len(w2) == HIDDEN):
            raise ValueError(f"expected {HIDDEN} hidden units")
        return cls(w1=w1, b1=b1, w2=w2, b2=float(d["b2"]))  # type: ignore[arg-type]


def bce(p: float, y: int) -> float:
    """Binary cross-entropy of probability ``p`` against label ``y``."""
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return -math.log(p) if y == 1 else -math.log(1.0 - p)


def fmt_time(seconds: float) -> str:
    """tqdm-style ``MM:SS`` (``H:MM:SS`` past an hour)."""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def progress_bar(
    epoch: int, epochs: int, n: int, total: int, elapsed: float, loss: float, block: str = "█"
) -> str:
    """A tqdm-like line, e.g. ``epoch 2/5  46%|████      | 23/50 [00:01<00:01, 20.1it/s, ...]``."""
    frac = n / total if total else 1.0
    filled = int(frac * BAR_WIDTH)
    bar = block * filled + " " * (BAR_WIDTH - filled)
    rate = n / elapsed if elapsed > 0 else 0.0
    remaining = (total - n) / rate if rate > 0 else 0.0
    speed = f"{rate:.1f}it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.2f}s/it"
    return (
        f"epoch {epoch}/{epochs} {frac * 100:3.0f}%|{bar}| {n}/{total} "
        f"[{fmt_time(elapsed)}<{fmt_time(remaining)}, {speed}, loss={loss:.4f}]"
    )


def save_checkpoint(out: Path, epoch: int, payload: dict[str, object]) -> Path:
    """Write ``out/epoch{N}.pt`` atomically: a hidden temp file, fsync, then rename."""
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"epoch{epoch}.pt"
    tmp = out / f".epoch{epoch}.pt.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(description="Train a tiny MLP on synthetic data (demo job).")
    p.add_argument("--epochs", type=int, default=5, help="number of epochs (default 5)")
    p.add_argument("--steps", type=int, default=50, help="SGD steps per epoch (default 50)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="data and init seed (default 0)")
    p.add_argument(
        "--sleep", type=float, default=0.02, help="extra seconds per step (default 0.02)"
    )
    p.add_argument("--out", type=Path, default=None, help="write DIR/epoch{N}.pt checkpoints")
    p.add_argument(
        "--fail-at-epoch",
        type=int,
        default=None,
        metavar="N",
        help="exit 1 during epoch N (demo failures and retries)",
    )
    p.add_argument(
        "--oom-at-epoch",
        type=int,
        default=None,
        metavar="N",
        help="fake a CUDA out-of-memory error during epoch N",
    )
    return p


def train(args: argparse.Namespace, out: TextIO) -> int:
    """Run the training loop, writing progress to ``out``; returns the exit status."""
    tty = out.isatty()
    try:
        block = "█" if "█".encode(out.encoding or "ascii") else "#"
    except (LookupError, UnicodeEncodeError):
        block = "#"

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = "all" if cvd is None else (cvd or "none")
    say(f"using GPUs: {gpus} (job {os.environ.get('TMUXTRAIN_JOB_ID') or '-'})")
    say(
        f"training mlp: {N_TRAIN} samples, {args.epochs} epochs x {args.steps} steps, "
        f"lr {args.lr:g}, seed {args.seed}"
    )

    train_set = make_dataset(args.seed, "train", N_TRAIN)
    val_set = validation_set(args.seed)
    model = MLP.init(args.seed)
    rng = random.Random(f"tmuxtrain-example-{args.seed}-batches")
    total_steps = args.epochs * args.steps
    global_step = 0
    smooth: float | None = None

    for epoch in range(1, args.epochs + 1):
        start = time.monotonic()
        epoch_loss = 0.0
        for step in range(1, args.steps + 1):
            if step == args.steps // 2 + 1:
                if epoch == args.fail_at_epoch:
                    if tty:
                        out.write("\n")
                    say(f"error: simulated failure at epoch {epoch}")
                    print(f"simulated failure at epoch {epoch}", file=sys.stderr, flush=True)
                    return 1
                if epoch == args.oom_at_epoch:
                    if tty:
                        out.write("\n")
                        out.flush()
                    print(
                        "Traceback (most recent call last):\n"
                        '  File "train_example.py", in train\n'
                        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
            batch = [rng.choice(train_set) for _ in range(BATCH)]
            loss = model.sgd_step(batch, args.lr)
            epoch_loss += loss
            smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
            global_step += 1
            if args.sleep > 0:
                time.sleep(args.sleep)
            if tty:
                bar = progress_bar(
                    epoch, args.epochs, step, args.steps, time.monotonic() - start, smooth, block
                )
                out.write("\r" + bar)
                out.flush()
            elif global_step % LOG_EVERY == 0:
                say(f"step {global_step}/{total_steps} loss={smooth:.4f}")
        if tty:
            out.write("\n")
        _, val_acc = model.evaluate(val_set)
        mean_loss = epoch_loss / max(1, args.steps)
        say(f"epoch {epoch}/{args.epochs} loss {mean_loss:.4f} val_acc {val_acc:.2f}")
        if args.out is not None:
            payload: dict[str, object] = {
                "format": "tmuxtrain-example-mlp/1",
                "epoch": epoch,
                "seed": args.seed,
                "lr": args.lr,
                "loss": mean_loss,
                "val_acc": val_acc,
                "model": model.to_dict(),
            }
            path = save_checkpoint(args.out, epoch, payload)
            say(f"saved checkpoint {path}")
    say("done")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, train, map Ctrl-C to exit status 130."""
    args = build_parser().parse_args(argv)
    if args.epochs < 1 or args.steps < 1:
        print("error: --epochs and --steps must be at least 1", file=sys.stderr)
        return 2
    # A shell that started us in the background may have left SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return train(args, sys.stdout)
    except KeyboardInterrupt:
        if sys.stdout.isatty():
            sys.stdout.write("\n")
        print("interrupted", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
