"""A retry after CUDA ran out of memory asks for more than the attempt that ran out had."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tmuxtrain.core import oom
from tmuxtrain.core.model import GpuInfo, Job, JobSpec

GIB = 1024


def gpu(index: int, total: int | None = 24 * GIB, **used: int) -> GpuInfo:
    jobs = {int(k[1:]): v for k, v in used.items()}
    return GpuInfo(index, f"GPU-{index}", "g", total, sum(jobs.values()), job_used_mib=jobs)


def test_the_next_ask_is_the_larger_of_peak_and_ask_times_the_factor() -> None:
    r = oom.raise_vram(4 * GIB, 6 * GIB, 24 * GIB, 1024)
    assert r.vram_mib == 9 * GIB
    assert r.words == "asks for 9 GiB per GPU (had 4 GiB, peak 6 GiB)"
    # A peak below the ask (seen before the job allocated all of it) counts as the ask.
    assert oom.raise_vram(8 * GIB, 2 * GIB, 80 * GIB, 0).vram_mib == 12 * GIB
    assert oom.raise_vram(8 * GIB, None, None, 0).vram_mib == 12 * GIB  # no GPU known: no cap


def test_more_than_a_gpu_can_give_becomes_whole_gpus() -> None:
    r = oom.raise_vram(16 * GIB, None, 24 * GIB, 1024)  # 24 GiB > 24 GiB - 1 GiB headroom
    assert r.vram_mib is None
    assert r.words == "asks for whole GPUs (had 16 GiB)"
    assert oom.raise_vram(None, 20 * GIB, 24 * GIB, 0) == oom.Raise(
        None, "it had whole GPUs already"
    )


@given(
    ask=st.integers(1, 200 * GIB),
    peak=st.none() | st.integers(0, 200 * GIB),
    largest=st.none() | st.integers(1, 200 * GIB),
    headroom=st.integers(0, 4 * GIB),
)
def test_a_raise_is_always_more_than_the_attempt_had_and_fits_a_gpu(
    ask: int, peak: int | None, largest: int | None, headroom: int
) -> None:
    r = oom.raise_vram(ask, peak, largest, headroom)
    if r.vram_mib is None:
        assert largest is not None  # whole GPUs only where a GPU's size is known
    else:
        assert r.vram_mib > max(ask, peak or 0)
        assert r.vram_mib % oom.ROUND_MIB == 0
        assert largest is None or r.vram_mib <= largest - headroom


def test_the_largest_gpu_is_the_largest_known() -> None:
    assert oom.largest_gpu([gpu(0, 24 * GIB), gpu(1, None), gpu(2, 80 * GIB)]) == 80 * GIB
    assert oom.largest_gpu([gpu(0, None)]) is None


def test_a_raised_request_is_what_the_job_asks_for_and_its_reason_says_so() -> None:
    spec = JobSpec("a", "x", "/", vram_mib=4 * GIB)
    job = Job(1, spec)
    assert (job.vram_mib, oom.note(job)) == (4 * GIB, "")
    job.vram_source, job.vram_request_mib = "raised", 9 * GIB
    assert job.vram_mib == 9 * GIB
    assert oom.note(job) == "; asks for 9 GiB per GPU after CUDA ran out of memory"
    job.vram_request_mib = None
    assert job.vram_mib is None
    assert oom.note(job) == "; asks for whole GPUs after CUDA ran out of memory"
