"""Slurm's output, as 22.05 prints it (docs/slurm-facts.md), parsed into what the runner
needs: states, pending reasons, starts, exit codes, free GPUs."""

from __future__ import annotations

import time

from tmuxtrain.runners.slurm_parse import (
    ended,
    expand_tasks,
    gres_count,
    parse_sacct,
    parse_sinfo,
    parse_squeue,
    parse_time,
)

SQUEUE = """\
1|1|1|N/A|FAILED|NonZeroExitCode|2026-12-06T02:10:31|2026-12-06T02:10:33|0|tok-1|
2_17|3|2|17|FAILED|NonZeroExitCode|2026-12-06T02:10:31|2026-12-06T02:10:33|0|(null)|
2_19|2|2|19|RUNNING|None|2026-12-06T02:10:34|NONE|0|(null)|
5_[20-21,23%2]|5|5|20-21,23%2|PENDING|JobArrayTaskLimit|N/A|N/A|0|(null)|
7|7|7|N/A|PENDING|Dependency|N/A|N/A|1|tok-7|
garbage
"""


def test_squeue_rows_by_the_id_a_user_sees_and_pending_tasks_one_by_one() -> None:
    rows = parse_squeue(SQUEUE)
    assert set(rows) == {"1", "2_17", "2_19", "5_20", "5_21", "5_23", "7"}
    assert (rows["2_17"].raw, rows["2_17"].state) == ("3", "FAILED")
    assert rows["2_19"].start == parse_time("2026-12-06T02:10:34") and rows["2_19"].end is None
    assert (rows["5_21"].state, rows["5_21"].reason) == ("PENDING", "JobArrayTaskLimit")
    assert (rows["7"].restarts, rows["7"].comment) == (1, "tok-7")


def test_times_are_local_and_unknown_is_none() -> None:
    t = parse_time("2026-12-06T02:10:31")
    assert t == time.mktime((2026, 12, 6, 2, 10, 31, 0, 0, -1))
    assert parse_time("N/A") is None and parse_time("NONE") is None and parse_time("") is None


def test_task_lists() -> None:
    assert expand_tasks("0-3%2") == [0, 1, 2, 3]
    assert expand_tasks("17,19") == [17, 19]
    assert expand_tasks("5-7,9") == [5, 6, 7, 9]


def test_sacct_keeps_the_last_record_of_a_requeued_job() -> None:
    text = "31|PENDING|0:0|Unknown\n14|FAILED|3:0|2026-12-06T02:10:33\n31|COMPLETED|0:0|N/A\n"
    records = parse_sacct(text)
    assert records["14"].exit_code == 3 and records["14"].ended_at is not None
    assert records["31"] == ended("COMPLETED", "0:0", None)


def test_final_states_mean_what_the_facts_say() -> None:
    assert ended("COMPLETED", "0:0", None).exit_code == 0
    assert ended("FAILED", "3:0", None).exit_code == 3
    e = ended("FAILED", "0:9", None)
    assert (e.exit_code, e.note) == (137, "killed by signal 9")
    e = ended("FAILED", "0:53", None)
    assert e.exit_code is None and "JobLaunchFailure" in e.note
    e = ended("CANCELLED", "0:0", None)
    assert e.cancelled and e.exit_code is None
    assert ended("TIMEOUT", "0:0", None).note == "Slurm's time limit"
    assert ended("CANCELLED by 0", "0:15", None).cancelled


def test_free_gpus_from_sinfo() -> None:
    assert gres_count("gpu:4") == 4
    assert gres_count("gpu:a100:4(S:0-1)") == 4
    assert gres_count("gpu:2,shard:8") == 2
    assert gres_count("(null)") == 0
    [node] = parse_sinfo("tt-node|gpu*|mixed|gpu:4|gpu:3|\ntt-node|debug|mixed|gpu:4|gpu:3|\n")
    assert (node.partitions, node.gpus, node.gpus_used) == (("gpu*", "debug"), 4, 3)
