"""The refresh benchmark runs, and a busy refresh re-formats only the rows that changed."""

from __future__ import annotations

from pathlib import Path

from tests.ui.demo_state import build_bench
from tests.ui.refresh_bench import measure_refresh_detail
from tmuxtrain.api import Client


def test_busy_refreshes_touch_only_the_running_rows(tmp_path: Path) -> None:
    client = Client(build_bench(str(tmp_path / "home"), jobs=300, gpus=4))
    result = measure_refresh_detail(client, n=3)
    assert result["rows"] == 300
    assert result["rows_formatted"] == 8  # the 2 running jobs per GPU whose metrics moved
    assert result["mean"] > 0
