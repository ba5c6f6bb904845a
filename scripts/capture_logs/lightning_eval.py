"""Evaluate a checkpoint saved by lightning_fit.py --ckpt, as a checkpoint-evaluation job
would: `trainer.validate()` prints its results table (val_loss, val_acc)."""

from __future__ import annotations

import sys

import lightning as L
from lightning_fit import Net, loader  # type: ignore[import-not-found]


def main() -> None:
    model = Net.load_from_checkpoint(sys.argv[1])
    trainer = L.Trainer(accelerator="cpu", logger=False)
    trainer.validate(model, loader(128, 1))


if __name__ == "__main__":
    main()
