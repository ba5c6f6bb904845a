#!/usr/bin/env python3
"""Write docs/dashboard.svg: the dashboard on the demo home (simulated GPUs, jobs in every
state, a loss curve), as Textual's own SVG screenshot. Rerun after changing the UI:

    python scripts/screenshot.py [--out docs/dashboard.svg] [--size 160x48] [--theme NAME]

Nothing runs: the demo home is fabricated with fixed timestamps, the clock is frozen, and
the scheduler lock is held here (with a fixed pid) so the header reads "running".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.demo_state import DEMO_NOW, build_demo  # noqa: E402
from tmuxtrain.api import Client  # noqa: E402
from tmuxtrain.daemonctl import hold_lock  # noqa: E402
from tmuxtrain.ui.app import make_app  # noqa: E402

SHOWN_PID = 4242  # what the header shows, so the picture does not change from run to run


async def screenshot(client: Client, size: tuple[int, int], theme: str | None) -> str:
    app = make_app(client, clock=lambda: DEMO_NOW, refresh_s=None, theme=theme)
    async with app.run_test(size=size) as pilot:
        for _ in range(400):
            if app.is_settled():
                break
            await pilot.pause(0.025)
        else:
            raise SystemExit("the dashboard did not load")
        await pilot.pause()
        svg = app.export_screenshot(title="tmuxtrain ui")
    app.source.close()
    return svg


def main() -> int:
    p = argparse.ArgumentParser(description="Write the README's dashboard screenshot.")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.svg")
    p.add_argument("--size", default="160x48", help="COLSxROWS (default 160x48)")
    p.add_argument("--theme", default=None, help="a Textual theme, e.g. textual-light")
    a = p.parse_args()
    cols, rows = (int(n) for n in a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = build_demo(os.path.join(tmp, "home"))
        with hold_lock(settings.lock_path):
            with open(settings.lock_path, "w") as f:
                json.dump({"pid": SHOWN_PID}, f)
            svg = asyncio.run(screenshot(Client(settings), (cols, rows), a.theme))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(svg, encoding="utf-8")
    print(f"wrote {a.out} ({cols}x{rows})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
