"""Keras 3 (torch backend) `model.fit` on synthetic data, CPU; `--verbose 1` (bar) or 2 (one
line per epoch)."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verbose", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=a.epochs, batch_size=16, validation_split=0.2, verbose=a.verbose)


if __name__ == "__main__":
    main()
