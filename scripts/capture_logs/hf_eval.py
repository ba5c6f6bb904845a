"""Evaluate a checkpoint saved by hf_trainer.py (`{checkpoint}` is its checkpoint-STEP
folder, or any file in it): prints the Trainer's evaluation dict, as a checkpoint-evaluation
job would."""

from __future__ import annotations

import os
import sys

import torch
from hf_trainer import Tokens  # type: ignore[import-not-found]
from transformers import GPT2LMHeadModel, Trainer, TrainingArguments


def main() -> None:
    path = os.path.abspath(sys.argv[1])
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir="/tmp/hf_eval", per_device_eval_batch_size=8, report_to="none", use_cpu=True
    )
    trainer = Trainer(model=GPT2LMHeadModel.from_pretrained(folder), args=args)
    print(trainer.evaluate(Tokens(64, 1)))


if __name__ == "__main__":
    main()
