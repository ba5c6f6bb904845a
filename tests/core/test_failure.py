"""Why a job failed, in words, from its exit status and its last output."""

from __future__ import annotations

from tmuxtrain.core.failure import explain

TRACEBACK = """\
epoch 3/10 loss 0.42
Traceback (most recent call last):
  File "train.py", line 40, in <module>
    main()
  File "train.py", line 33, in main
    model = build(cfg)
KeyError: 'hidden_size'
\x1b[2m[tmuxtrain] job 7 attempt 1 exited with status 1\x1b[0m
"""


def test_the_last_line_of_a_python_traceback() -> None:
    why, lines = explain(1, TRACEBACK)
    assert why == "KeyError: 'hidden_size'"
    assert lines[-1] == "KeyError: 'hidden_size'" and lines[0].startswith("  File")


def test_command_not_found() -> None:
    why, lines = explain(127, "sh: 1: pyhton: not found\n")
    assert (why, lines) == ("command not found", ["sh: 1: pyhton: not found"])


def test_cannot_cd_and_not_executable() -> None:
    why, _ = explain(126, "[tmuxtrain] cannot cd to /data/run 3\n")
    assert why == "cannot cd to /data/run 3"
    assert explain(126, "sh: 1: ./train.sh: Permission denied\n")[0].startswith("command not")


def test_cuda_out_of_memory_wins_over_the_traceback_it_ends() -> None:
    tail = TRACEBACK.replace(
        "KeyError: 'hidden_size'",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    )
    why, lines = explain(1, tail)
    assert why == "CUDA out of memory" and "Tried to allocate" in lines[0]


def test_a_signal_and_nothing_to_say() -> None:
    assert explain(137, "")[0] == "killed by signal 9 (SIGKILL)"
    assert explain(143, "step 5\n")[0] == "killed by signal 15 (SIGTERM)"
    assert explain(3, "step 5\nstep 6\n") == ("", [])
    assert explain(None, "") == ("", [])


def test_a_progress_bar_redraw_is_read_as_its_last_drawing() -> None:
    tail = "Traceback (most recent call last):\n  x\n\rbar 10%\rValueError: bad shape\n"
    assert explain(1, tail)[0] == "ValueError: bad shape"
