"""tmuxtrain.core.metrics: raw job output (\\r redraws, ANSI, CRLF, split UTF-8) -> samples."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmuxtrain.core.metrics import MAX_METRICS, LogParser, Sample, parse_line


def feed_lines(parser: LogParser, *lines: str, now: float = 0.0) -> list[Sample]:
    return parser.feed("".join(line + "\n" for line in lines).encode(), now)


def by_name(samples: list[Sample]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s.value)
    return out


# --- formats -------------------------------------------------------------------------------


def test_hugging_face_trainer_dicts() -> None:
    line = "{'loss': 0.52, 'grad_norm': 1.3, 'learning_rate': 4.9e-05, 'epoch': 1.3}"
    assert parse_line(line) == {"loss": 0.52, "grad_norm": 1.3, "lr": 4.9e-05, "epoch": 1.3}
    evals = parse_line(
        "{'eval_loss': 0.41, 'eval_accuracy': 0.9, 'eval_runtime': 1.2, 'epoch': 1.0}"
    )
    assert evals == {"eval_loss": 0.41, "eval_accuracy": 0.9, "eval_runtime": 1.2, "epoch": 1.0}


def test_lightning_bar_with_colours_and_redraws() -> None:
    bar = "\x1b[32mEpoch 3:  45%|████▌     | 450/1000 [00:30<00:37, 14.8it/s, loss=0.31, v_num=0]\x1b[0m"
    assert parse_line(bar) == {"epoch": 3, "step": 450, "steps": 1000, "loss": 0.31}

    p = LogParser()
    redraws = (
        "\rEpoch 3:  45%|████▌     | 450/1000 [00:30<00:37, 14.8it/s, loss=0.31, v_num=0]"
        "\rEpoch 3:  46%|████▌     | 460/1000 [00:31<00:36, 14.8it/s, loss=0.29, v_num=0]"
        "\r"
    )
    samples = p.feed(redraws.encode(), now=1.0)
    seen = by_name(samples)
    assert seen["step"] == [450, 460]
    assert seen["loss"] == [0.31, 0.29]
    assert seen["epoch"] == [3]  # state: reported when it changes, not on every redraw
    assert "v_num" not in p.latest


def test_plain_tqdm_bar_gives_step_and_steps() -> None:
    line = " 45%|████▌     | 450/1000 [00:30<00:37, 14.8it/s]"
    assert parse_line(line) == {"step": 450, "steps": 1000}


def test_side_bars_are_not_training_progress() -> None:
    assert parse_line("Validation DataLoader 0:  45%|████▌     | 45/100 [00:03<00:03]") == {}
    assert parse_line("Map: 100%|██████████| 25000/25000 [00:05<00:00, 4.9k examples/s]") == {}
    assert parse_line("Downloading: 100%|██████████| 440M/440M [00:05<00:00, 80.0MB/s]") == {}


def test_hf_eval_bar_does_not_move_training_progress() -> None:
    p = LogParser()
    feed_lines(p, " 45%|████▌     | 450/1000 [00:30<00:37, 14.8it/s]")
    feed_lines(p, " 60%|██████    | 30/50 [00:01<00:01, 20.0it/s]")  # evaluation loop
    assert p.latest["step"] == 450
    assert p.latest["steps"] == 1000
    assert p.progress == pytest.approx(0.45)


def test_keras() -> None:
    assert parse_line("Epoch 3/10") == {"epoch": 3, "epochs": 10}
    step = "450/1000 [=============>................] - ETA: 12s - loss: 0.4000 - accuracy: 0.8000"
    assert parse_line(step) == {"step": 450, "steps": 1000, "loss": 0.4, "accuracy": 0.8}
    end = (
        "1000/1000 [==============================] - 75s 75ms/step - loss: 0.40 "
        "- accuracy: 0.80 - val_loss: 0.5"
    )
    assert parse_line(end) == {
        "step": 1000,
        "steps": 1000,
        "loss": 0.4,
        "accuracy": 0.8,
        "val_loss": 0.5,
    }
    keras3 = "450/1000 ━━━━━━━━━━━━━━━━━━━━ 12s 27ms/step - accuracy: 0.8000 - loss: 0.4000"
    assert parse_line(keras3) == {"step": 450, "steps": 1000, "accuracy": 0.8, "loss": 0.4}


def test_key_value_lines() -> None:
    assert parse_line("step 120/1000 loss=0.31 lr=3e-4") == {
        "step": 120,
        "steps": 1000,
        "loss": 0.31,
        "lr": 3e-4,
    }
    assert parse_line("train_loss: 0.3, val_acc: 0.9") == {"train_loss": 0.3, "val_acc": 0.9}
    # names in lower snake case; only numbers count
    assert parse_line("Train/Loss=0.3 valAcc=0.9 optimizer=adam") == {
        "train_loss": 0.3,
        "val_acc": 0.9,
    }
    # a printed torch loss, and words before the separator kept apart from the training loss
    assert parse_line("loss=tensor(0.3100, device='cuda:0')") == {"loss": 0.31}
    assert parse_line("Epoch 3 - train loss: 0.3, val loss: 0.5") == {
        "epoch": 3,
        "train_loss": 0.3,
        "val_loss": 0.5,
    }


def test_json_lines() -> None:
    assert parse_line('{"step": 100, "loss": 0.3, "run": "abc"}') == {"step": 100, "loss": 0.3}


def test_plain_epoch_and_step_lines() -> None:
    assert parse_line("epoch 3/10 loss 0.42") == {"epoch": 3, "epochs": 10, "loss": 0.42}
    assert parse_line("step 120/1000 loss=0.31") == {"step": 120, "steps": 1000, "loss": 0.31}
    assert parse_line("Epoch [3/10], Step [120/1000], Loss: 0.4123") == {
        "epoch": 3,
        "epochs": 10,
        "step": 120,
        "steps": 1000,
        "loss": 0.4123,
    }


def test_fairseq() -> None:
    line = "| epoch 003 | loss 2.31 | ppl 4.96 | wps 1234 | ups 1.2 | lr 0.0005"
    assert parse_line(line) == {
        "epoch": 3,
        "loss": 2.31,
        "ppl": 4.96,
        "wps": 1234,
        "ups": 1.2,
        "lr": 0.0005,
    }
    valid = "| epoch 001 | valid on 'valid' subset | loss 8.9 | ppl 477.2 | num_updates 1000"
    got = parse_line(valid)
    assert got["val_loss"] == 8.9
    assert "loss" not in got  # a validation loss must not pass for the training loss
    inner = (
        "2021-03-01 12:00:00 | INFO | train_inner | epoch 001:    100 / 1000 loss=9.5, ppl=724.1"
    )
    assert parse_line(inner) == {"epoch": 1, "step": 100, "steps": 1000, "loss": 9.5, "ppl": 724.1}


def test_timm() -> None:
    train = (
        "Train: 3 [ 450/1000 ( 45%)]  Loss: 2.31 (2.40)  Time: 0.5s,  20.3/s  "
        "(0.6s, 19.8/s)  LR: 1.000e-03  Data: 0.01 (0.02)"
    )
    assert parse_line(train) == {"epoch": 3, "step": 450, "steps": 1000, "loss": 2.31, "lr": 1e-3}
    test = "Test: [   0/390]  Time: 0.686 (0.686)  Loss:  0.8965 (0.8965)  Acc@1: 83.59 (83.59)"
    assert parse_line(test) == {"eval_loss": 0.8965, "eval_acc_1": 83.59}


NOISE = [
    "/usr/lib/python3.11/site-packages/torch/utils/data/dataloader.py:558: UserWarning: This "
    "DataLoader will create 8 worker processes in total.",
    "  warnings.warn(_create_warning_msg(",
    "Traceback (most recent call last):",
    '  File "/home/user/train.py", line 123, in <module>',
    "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total "
    "capacity; 77.10 GiB already allocated)",
    "2024-05-01 12:30:45,123 - INFO - Loading dataset from /data/imagenet/train",
    "[rank0]:[W501 12:30:45.123456 ProcessGroupNCCL.cpp:1234] Warning: NCCL timeout",
    "GPU available: True (cuda), used: True",
    "TPU available: False, using: 0 TPU cores",
    "Total params: 11,181,642",
    "Saving model checkpoint to ./results/checkpoint-500",
    "wandb: Run data is saved locally in /home/user/wandb/run-20240501_123045-abc123",
    "step=nan lr=inf",  # not finite: useless on a plot (a loss is another matter, below)
    "",
]


@pytest.mark.parametrize("line", NOISE)
def test_noise_lines_carry_no_metric(line: str) -> None:
    assert parse_line(line) == {}


def test_a_diverged_loss_is_kept() -> None:
    # nan/inf elsewhere is noise; a loss of nan is the news a dashboard must show
    assert parse_line("step=nan loss=nan lr=inf") == {"loss": pytest.approx(math.nan, nan_ok=True)}
    p = LogParser()
    samples = feed_lines(
        p, "step=1 loss=0.5", "step=2 loss=nan", "step=2 loss=nan", "step=3 loss=inf"
    )
    assert [s.step for s in samples if s.name == "loss"] == [1, 2, 3]  # NaN repeated: once
    assert math.isinf(p.latest["loss"])


def test_noise_log_gives_no_samples() -> None:
    p = LogParser()
    assert feed_lines(p, *NOISE * 50) == []
    assert p.latest == {}


# --- job patterns ----------------------------------------------------------------------------


def test_custom_pattern_wins_over_builtin() -> None:
    p = LogParser(custom={"loss": r"smoothed (?P<value>[0-9.]+)"})
    samples = feed_lines(p, "loss=0.9 smoothed 0.7")
    assert by_name(samples)["loss"] == [0.7]
    assert parse_line("loss=0.9 smoothed 0.7", {"loss": r"smoothed (?P<value>[0-9.]+)"}) == {
        "loss": 0.7
    }


def test_custom_pattern_finds_lines_no_builtin_format_would() -> None:
    p = LogParser(custom={"val_acc": r"val acc is (?P<value>[0-9.]+)"})
    assert by_name(feed_lines(p, "noise", "the val acc is 91.5 today")) == {"val_acc": [91.5]}


def test_custom_pattern_with_non_ascii_text_split_between_feeds() -> None:
    p = LogParser(custom={"précision": r"précision (?P<value>[0-9.]+)"})
    data = "précision 0.93\n".encode()
    cut = data.index(b"\xc3") + 1  # between the two bytes of the é
    assert p.feed(data[:cut], 0.0) == []
    assert p.feed(data[cut:], 0.0) == [Sample("précision", 0.93, None)]


# --- line handling ---------------------------------------------------------------------------


def test_partial_line_waits_for_its_end() -> None:
    p = LogParser()
    assert p.feed(b"step 5 loss=0.3", 0.0) == []
    assert p.feed(b"1", 0.0) == []
    assert by_name(p.feed(b"2\n", 0.0)) == {"loss": [0.312]}


def test_carriage_return_ends_a_line_and_crlf_reads_once() -> None:
    p = LogParser()
    samples = p.feed(b"loss=0.5\rloss=0.4\rloss=0.3", 0.0)
    assert by_name(samples) == {"loss": [0.5, 0.4]}  # the last redraw is not finished yet
    assert by_name(p.feed(b"\r\nloss=0.2\r\n", 0.0)) == {"loss": [0.3, 0.2]}


def test_ansi_colours_are_stripped_even_when_split() -> None:
    p = LogParser()
    data = b"\x1b[1mloss\x1b[0m: \x1b[32m0.25\x1b[0m\n"
    cut = data.index(b"[32m") + 2  # inside an escape sequence
    assert p.feed(data[:cut], 0.0) == []
    assert p.feed(data[cut:], 0.0) == [Sample("loss", 0.25, None)]


def test_multibyte_character_split_between_feeds() -> None:
    line = "450/1000 ━━━━━━━━━━━━━━━━━━━━ 12s 27ms/step - loss: 0.4000\n".encode()
    p = LogParser()
    cut = line.index("━".encode()) + 1  # Keras 3 is known by its bar: "━", not "\ufffd"
    samples = p.feed(line[:cut], 0.0) + p.feed(line[cut:], 0.0)
    assert by_name(samples) == {"step": [450], "steps": [1000], "loss": [0.4]}


def test_overlong_line_is_dropped_and_memory_stays_bounded() -> None:
    p = LogParser(max_partial=100)
    for _ in range(50):
        assert p.feed(b"x" * 1000, 0.0) == []
    assert len(p._partial) <= 100  # the incomplete line is not kept past the bound
    assert p.feed(b" loss=9\nloss=1\n", 0.0) == [Sample("loss", 1.0, None)]
    # the same line arriving whole is dropped too: where the bytes split does not matter
    assert LogParser(max_partial=100).feed(b"x" * 200 + b" loss=9\nloss=1\n", 0.0) == [
        Sample("loss", 1.0, None)
    ]


def test_metric_names_are_bounded() -> None:
    p = LogParser()
    feed_lines(p, *(f"layer_{i}_grad={i}" for i in range(MAX_METRICS + 50)))
    assert len(p.latest) == MAX_METRICS


def test_same_shape_lines_with_digits_in_names_stay_apart() -> None:
    # lines of one shape are read by a remembered plan; a digit in a name must not be shared
    p = LogParser()
    samples = feed_lines(p, "acc@1: 0.5", "acc@5: 0.9", "acc@1: 0.6")
    assert [(s.name, s.value) for s in samples] == [("acc_1", 0.5), ("acc_5", 0.9), ("acc_1", 0.6)]


# --- the pre-filter: which lines are read, and how ---------------------------------------------


def test_space_values_are_read_where_a_word_trigger_is_anywhere_in_the_line() -> None:
    # found first by `=`, later by "oss 0": "acc 0.9" is read as well
    assert by_name(feed_lines(LogParser(), "step=5 train loss 0.3 acc 0.9")) == {
        "step": [5],
        "train_loss": [0.3],
        "acc": [0.9],
        "loss": [0.3],  # the training loss by another name: the LOSS column shows it
    }
    # no "loss N"/"epoch N" in the line: only its `key=value` pairs are read
    assert by_name(feed_lines(LogParser(), "step=5 acc 0.9")) == {"step": [5]}


def test_custom_pattern_lines_in_one_chunk_keep_their_order() -> None:
    p = LogParser(custom={"val_acc": r"val acc is (?P<value>[0-9.]+)"})
    samples = feed_lines(p, "val acc is 0.5", "noise", "loss=0.4", "", "val acc is 0.6")
    assert [(s.name, s.value) for s in samples] == [
        ("val_acc", 0.5),
        ("loss", 0.4),
        ("val_acc", 0.6),
    ]


def test_a_custom_pattern_no_bytes_filter_can_take_reads_every_line() -> None:
    p = LogParser(custom={"précision": r"précision (?P<value>[0-9.]+)"})
    samples = p.feed("loss 0.5\n\nprécision 0.9\r\nvalid 3\nprécision 0.8".encode(), 0.0)
    assert by_name(samples) == {"loss": [0.5], "précision": [0.9]}  # the last line is unfinished
    assert by_name(p.feed(b"\n", 0.0)) == {"précision": [0.8]}


def test_repeated_value_texts_read_the_same_and_non_finite_ones_never() -> None:
    # (not a loss: a non-finite loss is kept, see test_a_diverged_loss_is_kept)
    p = LogParser()
    samples = feed_lines(p, "step=1 acc=1e999", "step=2 acc=0.5", "step=3 acc=1e999")
    samples += feed_lines(p, "step=4 acc=0.5", "step=4 acc=0.5", "step=5 acc=0", "step=6 acc=-0")
    assert [(s.name, s.value, s.step) for s in samples if s.name == "acc"] == [
        ("acc", 0.5, 2),
        ("acc", 0.5, 4),  # the same value at another step is another sample
        ("acc", 0.0, 5),
        ("acc", 0.0, 6),
    ]
    assert math.copysign(1, samples[-1].value) == -1  # "-0" is read as -0.0, not as "0" was
    assert p.latest == {"step": 6, "acc": 0}


# --- progress, steps for plotting, ETA --------------------------------------------------------


def test_sample_step_is_the_jobs_step_or_its_epoch() -> None:
    p = LogParser()
    assert feed_lines(p, "epoch 2 loss 0.5") == [Sample("epoch", 2, 2), Sample("loss", 0.5, 2)]
    assert Sample("loss", 0.4, 120) in feed_lines(p, "step 120/1000 loss=0.4")


def test_per_epoch_steps_keep_growing_for_plots_and_progress() -> None:
    p = LogParser()
    feed_lines(p, "Epoch 1/3", "500/1000 [==============>...............] - loss: 0.9")
    assert p.progress == pytest.approx(0.5 / 3)
    feed_lines(p, "1000/1000 [==============================] - loss: 0.8", now=1.0)
    assert p.progress == pytest.approx(1 / 3)
    samples = feed_lines(p, "Epoch 2/3", "500/1000 [==============>...............] - loss: 0.7")
    assert p.progress == pytest.approx(1.5 / 3)  # (epoch - 1 + step / steps) / epochs
    assert Sample("loss", 0.7, 1500) in samples


def test_lightning_zero_based_epochs() -> None:
    p = LogParser()
    p.feed(b"Epoch 0: 100%|##########| 1000/1000 [01:00<00:00, loss=0.9]\r", 0.0)
    samples = p.feed(b"Epoch 1:  50%|#####     | 500/1000 [00:30<00:30, loss=0.5]\r", 0.0)
    assert Sample("loss", 0.5, 1500) in samples


def test_eta_needs_two_points_in_time() -> None:
    p = LogParser()
    feed_lines(p, "step 100/1000 loss=1", "step 200/1000 loss=1", now=50.0)
    assert "eta_s" not in p.latest
    feed_lines(p, "step 300/1000 loss=1", now=60.0)
    assert p.latest["eta_s"] == pytest.approx(70.0)  # 100 steps in 10 s, 700 to go


def test_eta_from_epochs_when_there_are_no_steps() -> None:
    p = LogParser()
    feed_lines(p, "epoch 1/10 loss 0.9", now=0.0)
    feed_lines(p, "epoch 2/10 loss 0.8", now=60.0)
    assert p.latest["eta_s"] == pytest.approx(8 * 60.0)


def test_eta_is_smoothed_over_bursts_and_stalls() -> None:
    # 10 steps/s on average, but the loader alternates 5 s at 20 steps/s with 5 s stalled,
    # and output comes once a second: the last-interval rate swings between 0 and 2x.
    p = LogParser()
    etas = []
    step = 0
    for t in range(1, 800):
        step += 20 if t % 10 < 5 else 0
        feed_lines(p, f"step {step}/10000 loss=0.5", now=float(t))
        if t > 400:
            etas.append((p.latest["eta_s"], (10000 - step) / 10))
    for eta, true in etas:
        assert eta == pytest.approx(true, rel=0.1, abs=20)
    assert "eta_s" in p.latest


def test_eta_survives_an_epoch_boundary() -> None:
    p = LogParser()
    t = 0.0
    for epoch in (1, 2):
        feed_lines(p, f"Epoch {epoch}/2", now=t)
        for step in range(100, 1001, 100):
            t += 10.0
            feed_lines(p, f"{step}/1000 [======>.....] - loss: 0.5", now=t)
            if t > 10.0:
                done = (epoch - 1) * 1000 + step
                assert p.latest["eta_s"] == pytest.approx((2000 - done) / 10, abs=1e-6)
    assert p.latest["eta_s"] == 0.0


# --- chunking does not matter ----------------------------------------------------------------

LOG_LINES = [
    "{'loss': 0.52, 'grad_norm': 1.3, 'learning_rate': 4.9e-05, 'epoch': 1.3}",
    "\x1b[32mEpoch 3:  45%|████▌     | 450/1000 [00:30<00:37, loss=0.31, v_num=0]\x1b[0m\r",
    "step 120/1000 loss=0.31 lr=3e-4\r\n",
    "450/1000 [=============>................] - ETA: 12s - loss: 0.4000 - accuracy: 0.8",
    "| epoch 003 | loss 2.31 | ppl 4.96 | wps 1234",
    "Train: 3 [ 450/1000 ( 45%)]  Loss: 2.31 (2.40)  LR: 1.000e-03",
    "précision 0.93 ✓ acc@1: 0.7",
    '  File "/home/user/train.py", line 123, in <module>',
    "epoch 3/10 loss 0.42",
    "x" * 150 + " loss=7",
]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.sampled_from(LOG_LINES), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    max_partial=st.sampled_from([65536, 60]),
)
def test_chunking_does_not_change_the_result(
    lines: list[str], cuts: list[int], max_partial: int
) -> None:
    data = "\n".join(lines).encode() + b"\n"
    custom = {"précision": r"précision (?P<value>[0-9.]+)"}
    whole = LogParser(custom, max_partial=max_partial)
    expected = whole.feed(data, 5.0)
    chunked = LogParser(custom, max_partial=max_partial)
    got: list[Sample] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        got += chunked.feed(data[start:cut], 5.0)
        start = max(start, cut)
    assert got == expected
    assert chunked.latest == whole.latest


# --- issue 11: names, evaluations, counters ---------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "training mlp: 1024 samples",
        "using GPUs: 0 (job 7)",
        "num_examples = 10000",
        "mpirank: 0",
        "size_per_device: 8",
        "Trainable params: 178",
        "number of skipped iterations:   0",
        "  Instantaneous batch size per device = 8",
        "engine/trainer: " + ", ".join(f"k{i}=v{i}" for i in range(20)) + ", lr0=0.01, bs=4",
    ],
)
def test_prose_and_bookkeeping_are_no_metrics(line: str) -> None:
    assert parse_line(line) == {}


def test_the_example_scripts_banner_gives_only_its_lr() -> None:
    line = "training mlp: 1024 samples, 2 epochs x 20 steps, lr 0.05, seed 0"
    assert parse_line(line) == {"lr": 0.05}


def test_names_users_rely_on_are_kept() -> None:
    line = "val_acc: 0.9 accuracy: 0.8 f1: 0.7 bleu: 31.2 mAP50: 0.6 mAP50-95: 0.4 eval_loss: 0.3"
    assert parse_line(line) == {
        "val_acc": 0.9, "accuracy": 0.8, "f1": 0.7, "bleu": 31.2, "map50": 0.6,
        "map50_95": 0.4, "eval_loss": 0.3,
    }  # fmt: skip
    assert parse_line("valAcc=0.9 Train/Loss=0.3 learning rate: 0.1 grad norm: 2") == {
        "val_acc": 0.9, "train_loss": 0.3, "lr": 0.1, "grad_norm": 2,
    }  # fmt: skip


def test_evaluation_output_does_not_replace_training_values() -> None:
    p = LogParser()
    feed_lines(
        p,
        "Epoch 1:  50%|█████     | 20/40 [00:01<00:01, 14.8it/s, loss=0.5]",
        "Validation DataLoader 0:  50%|█████     | 4/8 [00:00<00:00, loss=0.9]",
        "valid:  50%|█████     | 4/8 [00:00<00:00, loss=0.366]",
        "eval epoch: 1, loss: 6.61",
    )
    got = p.latest
    assert (got["loss"], got["step"], got["steps"]) == (0.5, 20, 40)
    assert (got["val_loss"], got["eval_loss"]) == (0.366, 6.61)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Epoch [1][2600/7517]\tlr: 1e-3, loss: 0.5", (1, None, 2600, 7517)),
        ("Epoch(train) [1][80/90]  lr: 1e-3  loss: 0.5", (1, None, 80, 90)),
        ("Epoch: [0]  [78/5005]  eta: 1:23:45  loss: 0.5 (0.6)", (0, None, 78, 5005)),
        ("Train: [30/300][240/2859]\teta 0:12:34 lr 0.1\tloss 0.5 (0.6)", (30, 300, 240, 2859)),
        (" iteration      100/    1000 | lm loss: 5.000000E-01 |", (None, None, 100, 1000)),
        ("| epoch 001 |   100 / 8223 batches | loss  0.50 |", (1, None, 100, 8223)),
        ("Iter(train) [  50/80000]  lr: 1e-3  loss: 0.5", (None, None, 50, 80000)),
    ],
)
def test_bracketed_and_other_counters(line: str, expected: tuple[float | None, ...]) -> None:
    p = LogParser()
    feed_lines(p, line)
    got = p.latest
    assert tuple(got.get(k) for k in ("epoch", "epochs", "step", "steps")) == expected
    assert got["loss"] == 0.5  # "lm loss" too: the training loss by another name


def test_a_printed_eta_where_the_run_is_not_known() -> None:
    p = LogParser()
    feed_lines(p, "Epoch [1][50/7330]\tlr: 1e-3, eta: 1 day, 2:03:04, loss: 0.5", now=0.0)
    feed_lines(p, "Epoch [1][100/7330]\tlr: 1e-3, eta: 1 day, 2:03:00, loss: 0.4", now=10.0)
    assert p.latest["eta_s"] == 86400 + 2 * 3600 + 3 * 60  # not the epoch's own 20 minutes


def test_finish_drops_the_eta_and_reads_the_last_unfinished_line() -> None:
    p = LogParser()
    feed_lines(p, "step 1/10 loss=0.9", now=0.0)
    feed_lines(p, "step 5/10 loss=0.5", now=10.0)
    p.feed(b"step 10/10 loss=0.1", 20.0)  # no newline: the job died mid-line
    assert "eta_s" in p.latest and p.latest["loss"] == 0.5
    final = p.finish(21.0)
    assert {s.name: s.value for s in final} == {"step": 10, "steps": 10, "loss": 0.1}
    assert "eta_s" not in p.latest and p.latest["progress"] == 1.0
