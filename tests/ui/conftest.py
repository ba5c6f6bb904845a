"""Helpers for the dashboard tests: a fixed demo home, waiting without sleeps, screen text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.ui.demo_state import DEMO_NOW, build_demo
from tmuxtrain.api import Client
from tmuxtrain.ui.app import TmuxtrainApp, make_app


def screen_text(app: TmuxtrainApp) -> str:
    """What the terminal shows, as plain text lines."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


async def until(
    pilot: Pilot[Any], cond: Callable[[], Any], timeout: float = 10.0, what: str = ""
) -> Any:
    """Let the app run until `cond()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        await pilot.pause(0.05)


async def settle(pilot: Pilot[Any], timeout: float = 10.0) -> None:
    """Wait until the app has loaded and shows the selected job's detail, its scrolling
    (animated: moving the cursor scrolls the table and the screen) has come to rest, and
    a frame more. A loaded machine drew some snapshots mid-scroll before this waited."""
    app = pilot.app
    assert isinstance(app, TmuxtrainApp)
    await until(pilot, app.is_settled, timeout, "the dashboard to load")
    await pilot.wait_for_scheduled_animations()

    def offsets() -> tuple[object, ...]:
        return (app.screen.scroll_offset, app.table.scroll_offset, app.table.cursor_row)

    last = None
    while last != (now := offsets()):  # two frames alike: nothing moves any more
        last = now
        await pilot.pause(0.05)
    await until(pilot, app.is_settled, timeout, "the dashboard to settle")
    await pilot.pause()


def run(
    app: TmuxtrainApp,
    body: Callable[[Pilot[Any]], Awaitable[None]],
    size: tuple[int, int] = (160, 48),
) -> None:
    """Run `body` against the app headless, and close its data source after."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await body(pilot)

    try:
        asyncio.run(main())
    finally:
        app.source.close()


@pytest.fixture
def demo_client(tmp_path: Path) -> Iterator[Client]:
    """A Client on the fabricated demo home (no tmux, no scheduler)."""
    client = Client(build_demo(str(tmp_path / "demo")))
    yield client
    client.close()


@pytest.fixture
def demo_app(demo_client: Client) -> Callable[..., TmuxtrainApp]:
    """Builds the dashboard on the demo home with a frozen clock and no timer."""

    def make(**kw: Any) -> TmuxtrainApp:
        kw.setdefault("clock", lambda: DEMO_NOW)
        kw.setdefault("refresh_s", None)
        return make_app(demo_client, **kw)

    return make
