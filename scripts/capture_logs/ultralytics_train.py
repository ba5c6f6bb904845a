"""Ultralytics YOLOv8n built from its yaml config (no weights), trained 2 epochs on a few
synthetic images with random boxes, CPU, plots off (they would fetch a font)."""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
from PIL import Image


def make_data(root: str) -> str:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        os.makedirs(f"{root}/images/{split}")
        os.makedirs(f"{root}/labels/{split}")
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                f"{root}/images/{split}/{i}.jpg"
            )
            with open(f"{root}/labels/{split}/{i}.txt", "w") as f:
                for _ in range(3):
                    cx, cy = rng.uniform(0.3, 0.7, 2)
                    f.write(f"{rng.integers(0, 2)} {cx:.3f} {cy:.3f} 0.2 0.2\n")
    path = f"{root}/data.yaml"
    with open(path, "w") as f:
        f.write(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{0: a, 1: b}}\n")
    return path


def main() -> None:
    root = tempfile.mkdtemp()
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    model.train(
        data=make_data(root),
        epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 2,
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        plots=False,
        project=root,
        amp=False,
        seed=0,
    )


if __name__ == "__main__":
    main()
