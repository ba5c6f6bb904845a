"""What a person reads in real training logs, read by `LogParser` (tests/fixtures/logs).

Each fixture is the exact output of one framework: captured from a real run on a terminal
(`\\r` redraws, colours and all) where the framework installs here, written from its
documented format where it cannot run here; tests/fixtures/logs/README.md says which and
how. Each test states what a person reads at the end of the log: the loss, the epoch and
step with their totals, the named metrics, and that nothing else poses as a metric.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tmuxtrain.core.metrics import LogParser

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def read(name: str, *, finish: bool = True, chunk: int = 4096) -> LogParser:
    """Feed a fixture as the scheduler would: in pieces, a second apart, then finish."""
    data = (LOGS / name).read_bytes()
    p = LogParser()
    t = 1000.0
    for i in range(0, len(data), chunk):
        t += 1.0
        p.feed(data[i : i + chunk], t)
    if finish:
        p.finish(t)
    return p


def check(p: LogParser, expected: dict[str, float]) -> None:
    """Exactly these metrics (no junk names), with these values."""
    got = p.latest
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-6), name


# --- captured from real runs -------------------------------------------------------------


def test_transformers_5_trainer() -> None:
    # values printed as strings: {'loss': '3.9', 'grad_norm': '1.098', ...}
    p = read("hf_trainer.log")
    check(
        p,
        {
            "step": 80, "steps": 80, "epoch": 2, "progress": 1.0,
            "loss": 3.9, "grad_norm": 1.098, "lr": 6.25e-07, "train_loss": 3.903,
            "eval_loss": 3.9044783115386963, "eval_runtime": 0.0156,
            "eval_samples_per_second": 4115.152, "eval_steps_per_second": 514.394,
            "train_runtime": 0.5196, "train_samples_per_second": 1232,
            "train_steps_per_second": 154,
        },
    )  # fmt: skip


def test_transformers_eval_bars_do_not_move_training_progress() -> None:
    p = LogParser()
    data = (LOGS / "hf_trainer.log").read_bytes()
    cut = data.index(b"'eval_loss'")  # in the first evaluation, at epoch 1 of 2
    p.feed(data[:cut], 0.0)
    assert (p.latest["step"], p.latest["steps"]) == (40, 80)
    assert p.progress == pytest.approx(0.5)


def test_lightning_rich_bar() -> None:
    # "Epoch 2/2 ━━━━ 40/40 0:00:00 • 0:00:00 622.96it/s train_loss: 0.231 val_loss: 0.174"
    # Rich counts epochs 0..2: the last epoch's bar is the end of the run, not 2/3 of it.
    p = read("lightning_rich.log")
    check(
        p,
        {
            "epoch": 2, "epochs": 2, "step": 40, "steps": 40, "progress": 1.0,
            "train_loss": 0.231, "loss": 0.231, "val_acc": 0.984375,
            # `trainer.validate()`'s results table: the full-precision score, not the bar's
            "val_loss": 0.17438533902168274,
        },
    )  # fmt: skip


def test_lightning_rich_bar_mid_run_progress() -> None:
    data = (LOGS / "lightning_rich.log").read_bytes()
    cut = data.index(b"Epoch 1/2") + 2000  # early in the second of three epochs
    p = LogParser()
    p.feed(data[:cut], 0.0)
    assert p.latest["epoch"] == 1
    assert (
        p.progress is not None and 1 / 3 <= p.progress < 2 / 3
    )  # not (1 + step / steps) / 2: epochs are 0, 1, 2


def test_lightning_tqdm_bar() -> None:
    # "Epoch 2: 100%|██| 40/40 [00:00<00:00, 395.13it/s, train_loss=0.231, val_loss=0.174, ...]"
    p = read("lightning_tqdm.log")
    check(
        p,
        {
            "epoch": 2, "step": 40, "steps": 40, "progress": 1.0,
            "train_loss": 0.231, "loss": 0.231, "val_loss": 0.17438533902168274,
            "val_acc": 0.984375,
        },
    )  # fmt: skip


def test_lightning_model_summary_is_no_metric() -> None:
    data = (LOGS / "lightning_tqdm.log").read_bytes()
    p = LogParser()
    p.feed(data[: data.index(b"Sanity Checking")], 0.0)
    assert p.latest == {}  # "178  Trainable params", "Total estimated model params size (MB)"


def test_keras_3_bar_with_backspaces() -> None:
    # "52/52 ━━━━ 0s 3ms/step - accuracy: 0.8352 - loss: 0.4983 - val_accuracy: ..."
    p = read("keras_v1.log")
    check(
        p,
        {
            "epoch": 3, "epochs": 3, "step": 52, "steps": 52, "progress": 1.0,
            "loss": 0.4983, "accuracy": 0.8352, "val_loss": 0.4744, "val_accuracy": 0.8049,
        },
    )  # fmt: skip


def test_keras_3_verbose_2_and_no_eta_after_the_end() -> None:
    # "52/52 - 0s - 3ms/step - accuracy: 0.8352 - loss: 0.4983 - ..."
    p = read("keras_v2.log", finish=False, chunk=64)  # a line at a time: a rate, an ETA
    assert p.latest["eta_s"] == 0.0
    p.finish(2000.0)
    check(
        p,
        {
            "epoch": 3, "epochs": 3, "step": 52, "steps": 52, "progress": 1.0,
            "loss": 0.4983, "accuracy": 0.8352, "val_loss": 0.4744, "val_accuracy": 0.8049,
        },
    )  # fmt: skip


def test_xgboost() -> None:
    # "[29]\ttrain-logloss:0.08303\ttrain-error:0.00688\teval-logloss:0.39768\t..."
    p = read("xgboost.log")
    check(
        p,
        {
            "step": 29, "loss": 0.08303, "train_logloss": 0.08303, "train_error": 0.00688,
            "eval_logloss": 0.39768, "eval_error": 0.1675,
        },
    )  # fmt: skip


def test_lightgbm() -> None:
    # "[30]\ttrain's l2: 0.0473908\ttrain's l1: 0.141392\tvalid's l2: 0.117102\t..."
    p = read("lightgbm.log")
    check(
        p,
        {
            "step": 30, "loss": 0.0473908, "train_l2": 0.0473908, "train_l1": 0.141392,
            "valid_l2": 0.117102, "valid_l1": 0.219925,
        },
    )  # fmt: skip


def test_tqdm_loop_with_a_valid_bar() -> None:
    # "train epoch 3/3: 100%|██| 24/24 [..., loss=0.195]", then "valid: 100%|██| 8/8 [...,
    # loss=0.278]": the validation loss is not the training loss, its bar not progress
    p = read("tqdm_loop.log")
    check(
        p,
        {
            "epoch": 3, "epochs": 3, "step": 24, "steps": 24, "progress": 1.0,
            "loss": 0.195, "val_loss": 0.278,
        },
    )  # fmt: skip


def test_fastai_table_and_bar() -> None:
    # "epoch  train_loss  valid_loss  accuracy  time" then "2  0.130112  0.054207  0.976562
    # 00:00"; the bar "Epoch 3/3 : |███| 100.00% [24/24 00:00<00:00... 0.1326]"
    p = read("fastai.log")
    check(
        p,
        {
            "epoch": 3, "epochs": 3, "step": 24, "steps": 24, "progress": 1.0,
            "loss": 0.1301, "train_loss": 0.130112, "valid_loss": 0.054207,
            "accuracy": 0.976562,
        },
    )  # fmt: skip


def test_ultralytics_yolov8() -> None:
    # "Epoch GPU_mem box_loss cls_loss dfl_loss Instances Size" / "2/2 0G 0.006319 0.3203
    # 0.003627 12 64: 100% ━━ 2/2", "Class Images Instances Box(P R mAP50 mA…" / "all 8 24
    # 0 0 0 0" (the last column's name was cut to the terminal's width)
    p = read("ultralytics.log")
    got = p.latest
    expected = {
        "epoch": 2, "epochs": 2, "step": 2, "steps": 2, "progress": 1.0,
        "box_loss": 0.006319, "cls_loss": 0.3203, "dfl_loss": 0.003627,
        "loss": 0.006319 + 0.3203 + 0.003627, "precision": 0, "recall": 0, "map50": 0,
    }  # fmt: skip
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    # the optimizer line's real settings may be read ("AdamW(lr=0.001667, momentum=0.9)"),
    # but not the configuration dump, the model table or the class count
    assert set(got) - set(expected) <= {"lr", "lr0", "momentum", "decay"}


# --- written from the documented formats (these cannot run here) --------------------------


def test_ultralytics_yolov5() -> None:
    # "1/99  3.32G  0.04321  0.06011  0.01918  177  640: 100%|██| 8/8": epochs 0..99
    p = read("yolov5.log")
    check(
        p,
        {
            "epoch": 1, "epochs": 99, "step": 8, "steps": 8, "progress": 0.02,
            "box_loss": 0.04321, "obj_loss": 0.06011, "cls_loss": 0.01918,
            "loss": 0.04321 + 0.06011 + 0.01918,
            "precision": 0.712, "recall": 0.633, "map50": 0.701, "map50_95": 0.462,
        },
    )  # fmt: skip


def test_yolov7() -> None:
    # "Epoch gpu_mem box obj cls total labels img_size", "Class ... mAP@.5 mAP@.5:.95"
    p = read("yolov7.log")
    check(
        p,
        {
            "epoch": 0, "epochs": 299, "step": 7393, "steps": 7393, "progress": 1 / 300,
            "box_loss": 0.06284, "obj_loss": 0.03418, "cls_loss": 0.02548, "loss": 0.1225,
            "precision": 0.552, "recall": 0.423, "map_5": 0.424, "map_5_95": 0.245,
        },
    )  # fmt: skip


def test_mmdetection_2() -> None:
    # "Epoch [2][50/7330]\tlr: 2.000e-02, eta: 18:02:11, time: 0.831, ..., loss: 0.6513"
    p = read("mmdet2.log", finish=False)
    assert p.latest["eta_s"] == 18 * 3600 + 2 * 60 + 11  # its own: epochs are not printed
    p.finish(0.0)
    check(
        p,
        {
            "epoch": 2, "step": 50, "steps": 7330, "progress": 50 / 7330, "lr": 0.02,
            "loss": 0.6513, "loss_rpn_cls": 0.1187, "loss_rpn_bbox": 0.0811,
            "loss_cls": 0.3232, "loss_bbox": 0.1283, "acc": 90.1516, "grad_norm": 4.1021,
            "bbox_map": 0.213, "bbox_map_50": 0.384, "bbox_map_75": 0.217,
            "bbox_map_s": 0.118, "bbox_map_m": 0.235, "bbox_map_l": 0.274,
            "bbox_map_copypaste": 0.213,
        },
    )  # fmt: skip


def test_mmengine() -> None:
    # "Epoch(train)  [1][  50/7330]  ... eta: 1 day, 2:03:04 ...": the validation pass's
    # "Epoch(val) [1][ 50/625] eta: 0:00:37" is neither progress nor the run's ETA
    data = (LOGS / "mmengine.log").read_bytes()
    p = LogParser()
    p.feed(data[: data.index(b"Epoch(train)  [1][ 100")], 0.0)
    assert p.latest["eta_s"] == 86400 + 2 * 3600 + 3 * 60 + 4
    p = read("mmengine.log", finish=False)
    assert p.latest["eta_s"] == 22 * 3600 + 18 * 60 + 40
    p.finish(0.0)
    check(
        p,
        {
            "epoch": 1, "step": 7330, "steps": 7330, "progress": 1.0, "base_lr": 0.02,
            "lr": 0.02, "grad_norm": 1.9021, "loss": 0.7012, "loss_rpn_cls": 0.0786,
            "loss_rpn_bbox": 0.0702, "loss_cls": 0.3012, "acc": 94.2022, "loss_bbox": 0.2512,
            "coco_bbox_map": 0.374, "coco_bbox_map_50": 0.581, "coco_bbox_map_75": 0.404,
            "coco_bbox_map_s": 0.212, "coco_bbox_map_m": 0.41, "coco_bbox_map_l": 0.481,
        },
    )  # fmt: skip


def test_detectron2() -> None:
    # " eta: 0:12:20  iter: 39  total_loss: 1.612 ...": no total of iterations printed
    data = (LOGS / "detectron2.log").read_bytes()
    p = LogParser()
    p.feed(data[: data.index(b"iter: 1999")], 0.0)
    assert p.latest["eta_s"] == 12 * 60 + 20
    p = read("detectron2.log")
    check(
        p,
        {
            "step": 1999, "loss": 0.3012, "total_loss": 0.3012, "loss_cls": 0.0912,
            "loss_box_reg": 0.1512, "loss_rpn_cls": 0.0217, "loss_rpn_loc": 0.0371,
            "lr": 0.02,
        },
    )  # fmt: skip


def test_megatron() -> None:
    # " iteration      110/    1000 | ... | learning rate: 1.650E-04 | ... | lm loss:
    # 6.987654E+00 | loss scale: 65536.0 | grad norm: 2.101 | number of skipped ..."
    p = read("megatron.log")
    check(
        p,
        {
            "step": 110, "steps": 1000, "progress": 0.11, "lr": 1.65e-4,
            "loss": 6.987654, "lm_loss": 6.987654, "grad_norm": 2.101,
            "val_lm_loss": 6.512345, "val_lm_loss_ppl": 673.4513,
        },
    )  # fmt: skip


def test_fairseq() -> None:
    p = read("fairseq.log")
    got = p.latest
    assert (got["epoch"], got["step"], got["steps"]) == (2, 100, 1000)
    assert (got["loss"], got["ppl"], got["val_loss"], got["val_ppl"]) == (8.2, 294.1, 8.9, 477.2)
    assert "num_updates" not in got and "num_model_params" not in got


def test_pytorch_examples_word_language_model() -> None:
    # "| epoch   2 |   200/ 2983 batches | lr 20.00 | ms/batch 45.02 | loss  5.57 | ppl ..."
    p = read("word_language_model.log")
    check(
        p,
        {
            "epoch": 2, "step": 200, "steps": 2983, "progress": 200 / 2983, "lr": 20,
            "loss": 5.57, "ppl": 262.39, "valid_loss": 5.53, "valid_ppl": 252.51,
        },
    )  # fmt: skip


def test_torchvision_references() -> None:
    # "Epoch: [1]  [  10/5005]  eta: 0:44:13  lr: 0.1  img/s: 690.3  loss: 4.9212 (4.9301)"
    p = read("torchvision_refs.log")
    got = p.latest
    assert (got["epoch"], got["step"], got["steps"]) == (1, 10, 5005)
    assert (got["loss"], got["acc1"], got["lr"]) == (4.9212, 10.0, 0.1)
    assert (got["eval_loss"], got["eval_acc1"]) == (4.8791, 8.5938)  # "Test:  [  0/196]"
    assert "epochs" not in got and "data" not in got and "time" not in got


def test_swin() -> None:
    # "Train: [31/300][0/2859]\teta 0:45:00 lr 0.000996\t...\tloss 2.2801 (2.2801)": epoch
    # 31 of 300 counted from 0, step 0 of 2859 in it
    p = read("swin.log")
    check(
        p,
        {
            "epoch": 31, "epochs": 300, "step": 0, "steps": 2859, "progress": 31 / 300,
            "lr": 0.000996, "loss": 2.2801, "grad_norm": 2.9876, "eval_loss": 0.5678,
        },
    )  # fmt: skip


def test_flax() -> None:
    # "train.py:230] eval epoch: 2, loss: 6.6104, accuracy: 12.34": not the training loss
    p = read("flax.log")
    check(
        p,
        {
            "epoch": 2, "loss": 6.8144, "accuracy": 12.5, "eval_loss": 6.6104,
            "eval_accuracy": 12.34,
        },
    )  # fmt: skip


def test_kohya() -> None:
    # "steps:  15%|█▌  | 150/1000 [02:03<11:34,  1.20it/s, avr_loss=0.0745]", "epoch 2/10"
    p = read("kohya.log")
    check(
        p,
        {
            "epoch": 2, "epochs": 10, "step": 150, "steps": 1000, "progress": 0.15,
            "avr_loss": 0.0745, "loss": 0.0745,
        },
    )  # fmt: skip


def test_lightning_results_table_without_rich() -> None:
    p = read("lightning_results_plain.log")
    check(p, {"val_acc": 0.984375, "val_loss": 0.17438533902168274, "test_acc": 0.96875})


# --- every fixture -------------------------------------------------------------------------

FIXTURES = sorted(p.name for p in LOGS.glob("*.log"))


@pytest.mark.parametrize("name", FIXTURES)
def test_how_the_bytes_arrive_does_not_matter(name: str) -> None:
    whole = read(name, chunk=1 << 30)
    for chunk in (1, 7, 4096):
        if chunk == 1 and (LOGS / name).stat().st_size > 20_000:
            continue
        assert read(name, chunk=chunk).latest == pytest.approx(whole.latest, nan_ok=True)


@pytest.mark.parametrize("name", FIXTURES)
def test_finish_returns_the_latest_of_every_metric(name: str) -> None:
    p = read(name, finish=False)
    final = p.finish(9999.0)
    assert {s.name: s.value for s in final} == {
        k: v for k, v in p.latest.items() if k not in ("progress", "eta_s")
    }
    assert "eta_s" not in p.latest
    assert all(not math.isnan(s.value) for s in final)
