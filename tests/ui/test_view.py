"""The dashboard's pure parts: ordering, formatting, bars, the plot, log reading, completion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmuxtrain.core.model import Config, Job, JobSpec, JobState
from tmuxtrain.core.schedule import start_order
from tmuxtrain.ui import view
from tmuxtrain.ui.add_job_screen import complete, path_candidates
from tmuxtrain.ui.log_tail import LogTail
from tmuxtrain.ui.metric_plot import plot_lines
from tmuxtrain.ui.palette import Palette
from tmuxtrain.ui.source import DataSource, clean_log


def job(job_id: int, state: JobState, **kw: object) -> Job:
    spec = JobSpec(
        name=f"job{job_id}",
        command="true",
        cwd="/",
        priority=int(kw.pop("priority", 0)),  # type: ignore[call-overload]
    )
    return Job(id=job_id, spec=spec, state=state, **kw)  # type: ignore[arg-type]


def test_queue_order_running_then_start_order_then_newest_finished() -> None:
    jobs = [
        job(1, JobState.SUCCEEDED, finished_at=100.0),
        job(2, JobState.PENDING),
        job(3, JobState.RUNNING),
        job(4, JobState.PENDING, priority=5),
        job(5, JobState.PENDING, held=True, priority=9),
        job(6, JobState.FAILED, finished_at=200.0),
        job(7, JobState.RUNNING),
        job(8, JobState.PENDING),
    ]
    pending = [j for j in jobs if j.state is JobState.PENDING]
    running = [j for j in jobs if j.state is JobState.RUNNING]
    for policy, want in [
        ("priority", [3, 7, 4, 2, 8, 5, 6, 1]),
        ("fifo", [3, 7, 2, 4, 8, 5, 6, 1]),  # submission order, whatever the priority
    ]:
        ids = start_order(pending, running, Config(policy=policy))
        rank = {job_id: n for n, job_id in enumerate(ids)}
        assert [j.id for j in sorted(jobs, key=lambda j: view.order_key(j, rank))] == want


def test_progress_fraction() -> None:
    assert view.progress_fraction({}) is None
    assert view.progress_fraction({"step": 50.0, "steps": 200.0}) == 0.25
    # 1-based epochs with a per-epoch step counter: epoch 2 of 4, half way through it
    assert view.progress_fraction({"epoch": 2.0, "epochs": 4.0, "step": 5.0, "steps": 10.0}) == (
        1.5 / 4
    )
    # a step past `steps` is not a per-epoch counter: epochs alone
    assert view.progress_fraction({"epoch": 3.0, "epochs": 4.0, "step": 900.0, "steps": 10.0}) == (
        2 / 4
    )
    assert view.progress_label({"epoch": 3.0, "epochs": 5.0}) == "ep 3/5"
    assert view.progress_label({"step": 120.0, "steps": 500.0}) == "120/500"


def test_progress_is_the_parsers() -> None:
    # issue 11, item 10: a finished Accelerate run the parser had at 100 % showed 0 %, a run
    # 26.7 % done showed 21.8 %: the dashboard now shows the parser's `progress`
    finished = {"epoch": 3.0, "epochs": 3.0, "step": 0.0, "steps": 125.0, "progress": 1.0}
    assert view.progress_fraction(finished) == 1.0
    running = {"epoch": 1.0, "epochs": 3.0, "step": 100.0, "steps": 125.0, "progress": 0.267}
    assert view.progress_fraction(running) == 0.267
    assert view.progress_label(running) == "ep 1/3"  # the bar shows the share


def test_bar_has_eighth_resolution() -> None:
    p = Palette.default()
    assert view.bar(0.0, 4, p.ok, p.muted).plain == "────"
    assert view.bar(1.0, 4, p.ok, p.muted).plain == "████"
    assert view.bar(0.5, 4, p.ok, p.muted).plain == "██──"
    assert view.bar(0.5 + 1 / 8, 4, p.ok, p.muted).plain == "██▌─"  # half a cell more


def test_vram_bar_tells_jobs_from_other_processes() -> None:
    p = Palette.default()
    gpu = {"memory_total_mib": 8000, "memory_used_mib": 6000, "memory_jobs_mib": 2000}
    text = view.vram_bar(gpu, 8, p)
    assert text.plain == "██████──"
    assert text.style == p.bar_jobs  # the first two cells: no span overrides them
    spans = [(s.start, s.end, s.style) for s in text.spans]
    assert spans[0] == (2, 6, p.bar_other)
    # a sliver of memory still shows
    tiny = {"memory_total_mib": 80000, "memory_used_mib": 100, "memory_jobs_mib": 0}
    assert view.vram_bar(tiny, 10, p).plain.count("█") == 1


def test_vram_figures() -> None:
    gpu = {"memory_total_mib": 81920, "memory_used_mib": 43520}
    assert view.vram_figures(gpu, compact=False) == "42.5/80 GiB"
    assert view.vram_figures(gpu, compact=True) == "42/80G"
    assert view.vram_figures({"memory_total_mib": 24576, "memory_used_mib": 0}, False) == (
        "0/24 GiB"
    )
    assert view.vram_figures({"memory_total_mib": 24576, "memory_used_mib": 512}, False) == (
        "0.5/24 GiB"
    )
    assert view.vram_figures({"memory_total_mib": None}, compact=True) == "?"


def test_filter_words_match_id_name_state_project() -> None:
    j = job(12, JobState.RUNNING, gpus=(3,))
    assert view.matches(j, [])
    assert view.matches(j, ["job12", "run"])
    assert view.matches(j, ["gpu3"])
    assert not view.matches(j, ["pending"])


def test_plot_lines_draw_a_falling_curve_corner_to_corner() -> None:
    rows = plot_lines([0, 1, 2, 3], [4.0, 3.0, 2.0, 1.0], width=4, height=2)
    assert len(rows) == 2 and all(len(r) == 4 for r in rows)
    # top-left dot set, bottom-right dot set
    assert ord(rows[0][0]) - 0x2800 & 0x01
    assert ord(rows[1][3]) - 0x2800 & 0x80
    assert plot_lines([], [], 3, 1) == ["⠀⠀⠀"]


def test_clean_log_keeps_the_last_redraw_and_drops_colours() -> None:
    raw = "start\n\x1b[32mgreen\x1b[0m\nbar 10%\rbar 50%\rbar 90%\n"
    assert clean_log(raw) == ["start", "green", "bar 90%", ""]


def test_log_tail_updates_the_line_being_written_in_place() -> None:
    tail = LogTail()
    tail.feed(1, "line 1\nepoch 1  10%|", reset=True)
    assert tail.last_lines(5) == ["line 1", "epoch 1  10%|"]
    tail.feed(1, "\repoch 1  60%|", reset=False)
    assert tail.last_lines(5) == ["line 1", "epoch 1  60%|"]
    tail.feed(1, "\repoch 1 100%|\ndone\n", reset=False)
    assert tail.last_lines(5) == ["line 1", "epoch 1 100%|", "done"]
    assert tail.last_lines(1) == ["done"]


def test_log_reading_is_incremental_and_survives_split_characters(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    path.write_bytes(b"hello\n")
    j = job(1, JobState.RUNNING, log_path=str(path))
    src = DataSource.__new__(DataSource)
    src._log = None
    first = src._read_log(j)
    assert first is not None and first.reset and first.text == "hello\n"
    assert src._read_log(j) is None  # nothing new
    with path.open("ab") as f:
        f.write("é".encode()[:1])
    half = src._read_log(j)
    assert half is not None and not half.reset and half.text == ""
    with path.open("ab") as f:
        f.write("é".encode()[1:] + b"\n")
    rest = src._read_log(j)
    assert rest is not None and rest.text == "é\n"
    path.write_bytes(b"new\n")  # truncated: a new attempt's log
    again = src._read_log(j)
    assert again is not None and again.reset and again.text == "new\n"


def test_path_completion(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "sweep.yaml").write_text("")
    (tmp_path / "jobs" / "single.yml").write_text("")
    (tmp_path / "jobs" / "notes.txt").write_text("")
    (tmp_path / ".hidden").mkdir()
    assert path_candidates("", str(tmp_path)) == ["jobs/"]
    assert complete("j", str(tmp_path)) == "jobs/"
    assert path_candidates("jobs/", str(tmp_path)) == ["jobs/single.yml", "jobs/sweep.yaml"]
    assert complete("jobs/s", str(tmp_path)) == "jobs/s"  # two candidates share only "s"
    assert complete("jobs/sw", str(tmp_path)) == "jobs/sweep.yaml"
    assert path_candidates(".h", str(tmp_path)) == [".hidden/"]


def test_checkpoint_score_prefers_keep_best_then_losses() -> None:
    m = {"eval_acc": 0.9, "eval_loss": 0.3, "eval_runtime": 1.0}
    assert view.checkpoint_score(m, "max:eval_acc") == ("eval_acc", 0.9)
    assert view.checkpoint_score(m, None) == ("eval_loss", 0.3)
    assert view.checkpoint_score({"bleu": 31.0, "acc": 1.0}, None) == ("acc", 1.0)
    assert view.checkpoint_score(m, "wer") is None and view.checkpoint_score({}, None) is None


def test_checkpoint_lines_keep_the_newest_and_name_a_best_scrolled_off() -> None:
    p = Palette.default()
    cks: list[dict[str, Any]] = [
        {"path": "/o/checkpoint-1", "eval_state": "succeeded", "metrics": {"eval_loss": 0.1},
         "best": True},
        {"path": "/o/last.ckpt", "version": 2, "eval_state": "failed", "metrics": {}},
        {"path": "/o/checkpoint-3/", "eval_state": None, "metrics": {}},
    ]  # fmt: skip
    lines = [t.plain for t in view.checkpoint_lines(cks, None, 3, p)]
    assert lines == [
        "3 checkpoints · 1 scored · best checkpoint-1",
        "✗ last.ckpt@2  failed",
        "· checkpoint-3  pending",
    ]
    lines = [t.plain for t in view.checkpoint_lines(cks, None, 10, p)]
    assert lines[:2] == ["3 checkpoints · 1 scored", "★ checkpoint-1  eval_loss 0.1"]
    assert view.checkpoint_lines(cks, None, 0, p) == []
