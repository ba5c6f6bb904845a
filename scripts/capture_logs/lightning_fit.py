"""Lightning 2.x: a tiny classifier on synthetic data, CPU. `--bar rich` uses RichProgressBar
(what Lightning 2.6 picks by itself when `rich` is installed), `--bar tqdm` the tqdm bar.
Fits with validation each epoch, then runs `trainer.validate()` (its results table).
`--ckpt DIR` saves every epoch as ModelCheckpoint does (`epoch=E-step=S.ckpt`) with
`last.ckpt` rewritten (`--save-last true`) or a symlink (`--save-last link`)."""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, i):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = nn.functional.cross_entropy(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, i):  # type: ignore[no-untyped-def]
        x, y = batch
        logits = self.layer(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(n: int, seed: int) -> DataLoader:  # type: ignore[type-arg]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bar", choices=["tqdm", "rich"], default="tqdm")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--ckpt", default=None, help="save checkpoints here, every epoch")
    ap.add_argument("--save-last", choices=["true", "link"], default="true")
    ap.add_argument("--epoch-sleep", type=float, default=0.0, help="a slower epoch, seconds")
    a = ap.parse_args()
    L.seed_everything(0)
    from lightning.pytorch.callbacks import (
        Callback,
        ModelCheckpoint,
        ModelSummary,
        RichModelSummary,
        RichProgressBar,
        TQDMProgressBar,
    )

    class Slow(Callback):
        def on_train_epoch_end(self, trainer, module):  # type: ignore[no-untyped-def]
            time.sleep(a.epoch_sleep)

    # Lightning 2.6 picks the Rich bar by itself when `rich` is installed: say which one.
    callbacks = (
        [RichProgressBar(), RichModelSummary()]
        if a.bar == "rich"
        else [TQDMProgressBar(), ModelSummary()]
    )
    if a.ckpt:
        save_last = True if a.save_last == "true" else "link"
        callbacks += [
            ModelCheckpoint(dirpath=a.ckpt, save_top_k=-1, save_last=save_last),  # type: ignore[arg-type]
            Slow(),
        ]
    trainer = L.Trainer(
        max_epochs=a.epochs,
        accelerator="cpu",
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=bool(a.ckpt),
        log_every_n_steps=5,
    )
    model = Net()
    trainer.fit(model, loader(640, 0), loader(128, 1))
    trainer.validate(model, loader(128, 1))


if __name__ == "__main__":
    main()
