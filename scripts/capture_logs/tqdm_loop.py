"""A hand-written PyTorch loop with tqdm bars, as many research scripts have: a `train` bar
per epoch with the loss in its postfix, then a `valid` bar with the validation loss."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    epochs = 3
    for epoch in range(1, epochs + 1):
        bar = tqdm(range(0, 384, 16), desc=f"train epoch {epoch}/{epochs}")
        for i in bar:
            loss = nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        with torch.no_grad():
            vbar = tqdm(range(384, 512, 16), desc="valid")
            total = 0.0
            for k, i in enumerate(vbar, 1):
                total += nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).item()
                vbar.set_postfix(loss=f"{total / k:.3f}")


if __name__ == "__main__":
    main()
