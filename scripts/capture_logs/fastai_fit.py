"""fastai: `fit_one_cycle` of a tiny model on synthetic tensors, CPU (its console table)."""

from __future__ import annotations

import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.metrics import accuracy
from torch import nn
from torch.utils.data import TensorDataset


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1024, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders.from_dsets(
        TensorDataset(x[:768], y[:768]), TensorDataset(x[768:], y[768:]), bs=32, device="cpu"
    )
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    learn.fit_one_cycle(3, 0.05)


if __name__ == "__main__":
    main()
