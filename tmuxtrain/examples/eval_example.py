"""Evaluate a checkpoint written by train_example.py on its synthetic validation set.

python3 eval_example.py runs/mlp-baseline/epoch3.pt
-> eval_loss=0.4123 eval_acc=0.83
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_example import MLP, validation_set


def main(argv: list[str] | None = None) -> int:
    """Load the checkpoint named on the command line, print its validation metrics."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: eval_example.py CHECKPOINT", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        ckpt = json.loads(path.read_text(encoding="utf-8"))
        model = MLP.from_dict(ckpt["model"])
        seed = int(ckpt["seed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: cannot read checkpoint {path}: {exc}", file=sys.stderr)
        return 2
    loss, acc = model.evaluate(validation_set(seed))
    print(f"eval_loss={loss:.4f} eval_acc={acc:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
