"""transformers 5 Trainer: a tiny GPT-2 built from a config, synthetic tokens, CPU.

Prints what every Trainer user sees: the tqdm bar, the logging dicts (strings in 5.x), the
evaluation dicts and the final summary. `--out DIR` saves checkpoints every `--save-steps`.
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments


class Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 64, (n, 16), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.x[i]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/hf_out")
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--save-steps", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2)
    args = TrainingArguments(
        output_dir=a.out,
        num_train_epochs=a.epochs,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        logging_steps=5,
        eval_strategy="epoch",
        save_strategy="steps" if a.save_steps else "no",
        save_steps=a.save_steps or 500,
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=GPT2LMHeadModel(cfg),
        args=args,
        train_dataset=Tokens(320, 0),
        eval_dataset=Tokens(64, 1),
    )
    trainer.train()
    print(trainer.evaluate())


if __name__ == "__main__":
    main()
