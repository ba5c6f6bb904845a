"""Learned VRAM, the pure policy: which jobs form a sweep, which may learn, and what."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tmuxtrain.core.learn import learnable, learned_asks, with_margin
from tmuxtrain.core.model import Job, JobSpec
from tmuxtrain.core.spec import parse_jobs

GIB = 1024


def sweep_job(job_id: int, sweep: str | None = "s1", **kw: Any) -> Job:
    spec = JobSpec(name=f"j{job_id}", command="python train.py", cwd="/", sweep=sweep)
    spec = dataclasses.replace(spec, **{k: v for k, v in kw.items() if hasattr(spec, k)})
    fields = {k: v for k, v in kw.items() if not hasattr(spec, k)}
    return Job(id=job_id, spec=spec, **fields)


def test_the_margin_is_ten_percent_or_512_mib_rounded_up() -> None:
    assert with_margin(4 * GIB) == 4608  # 4 GiB + 512 MiB (10 % would be less)
    assert with_margin(10_000) == 11_008  # 10 % = 11,000, up to a multiple of 256
    assert with_margin(1) == 768


@given(st.integers(1, 200 * GIB))
def test_the_margin_always_covers_the_peak(peak: int) -> None:
    ask = with_margin(peak)
    assert ask >= peak + 512 and ask >= peak * 1.1 and ask % 256 == 0
    assert ask < max(peak * 1.1, peak + 512) + 256


def test_only_sweep_jobs_without_a_declaration_learn() -> None:
    assert learnable(sweep_job(1))
    assert not learnable(sweep_job(2, sweep=None))  # an ad-hoc command
    assert not learnable(sweep_job(3, vram_mib=8 * GIB))  # its own word wins
    assert not learnable(sweep_job(4, vram_exclusive=True))  # `vram: exclusive` opts out
    assert not learnable(sweep_job(5, gpus=0))
    assert not learnable(sweep_job(6, vram_source="raised", vram_request_mib=30 * GIB))
    assert learnable(sweep_job(7, vram_source="learned", vram_request_mib=5 * GIB))


def test_a_sweep_learns_its_largest_peak_and_only_changes_are_returned() -> None:
    peaks = {("s1", 1): 4 * GIB, ("s2", 2): 70 * GIB}
    jobs = [
        sweep_job(1),  # learns
        sweep_job(2, vram_source="learned", vram_request_mib=4608),  # already has it
        sweep_job(3, vram_source="learned", vram_request_mib=2048),  # a larger peak came
        sweep_job(4, sweep="s2", gpus=2),  # 70 GiB + 10 % = 77 GiB: fits 79 GiB
        sweep_job(5, sweep="s1", gpus=2),  # another GPU count: nothing learned yet
        sweep_job(6, sweep="s3"),  # no sibling succeeded yet
        sweep_job(7, vram_mib=GIB),  # declared
    ]
    asks = learned_asks(jobs, peaks, largest_mib=79 * GIB)
    assert asks == {1: 4608, 3: 4608, 4: 77 * GIB}


def test_an_ask_that_does_not_fit_stays_exclusive_and_an_edit_goes_back() -> None:
    peaks = {("s1", 1): 23 * GIB}
    jobs = [
        sweep_job(1),  # 23 GiB + margin > 24 GiB: stays exclusive, nothing to write
        sweep_job(2, vram_source="learned", vram_request_mib=4608),  # back to exclusive
        # Edited to declare vram after it learned: back to its declaration.
        sweep_job(3, vram_mib=GIB, vram_source="learned", vram_request_mib=4608),
        sweep_job(4, vram_source="raised", vram_request_mib=30 * GIB),  # never touched
    ]
    assert learned_asks(jobs, peaks, largest_mib=24 * GIB) == {2: None, 3: None}


def test_jobs_of_one_file_and_command_shape_form_a_sweep() -> None:
    doc = {
        "jobs": [
            {"name": "a", "command": "python train.py --lr {lr}", "matrix": {"lr": [1, 2]}},
            {"name": "b", "command": "python train.py --lr {lr}", "matrix": {"lr": [3]}},
            {"name": "c", "command": "python eval.py"},
        ]
    }
    specs = parse_jobs(doc, "sweep.yaml", "/work")
    keys = [s.sweep for s in specs]
    assert keys[0] == keys[1] == keys[2] is not None  # one shape, though two entries
    assert keys[3] not in (None, keys[0])
    other = parse_jobs(doc, "other.yaml", "/work")[0].sweep
    assert other != keys[0]  # another file
    moved = parse_jobs(doc, "sweep.yaml", "/elsewhere")[0].sweep
    assert moved != keys[0]  # a file of the same name in another folder
    adhoc = parse_jobs({"command": "python train.py"}, "<command line>", "/work")[0]
    assert adhoc.sweep is None


def test_the_ask_is_what_the_job_json_calls_vram_mib() -> None:
    j = sweep_job(1, vram_source="learned", vram_request_mib=4608)
    assert (j.vram_mib, j.spec.vram_mib) == (4608, None)
    assert sweep_job(2, vram_mib=GIB).vram_mib == GIB


def test_an_edit_can_opt_out_and_another_command_leaves_the_sweep() -> None:
    from tmuxtrain.api.editing import edited_spec

    old = JobSpec(name="s", command="python train.py --lr 1", cwd="/", sweep="sw")
    assert edited_spec(old, vram="exclusive").vram_exclusive
    assert edited_spec(old, vram="exclusive").sweep == "sw"
    back = dataclasses.replace(old, vram_exclusive=True)
    assert not edited_spec(back, vram="8GiB").vram_exclusive
    assert edited_spec(back, priority=3).vram_exclusive  # untouched
    assert edited_spec(old, command="python big.py").sweep is None
