"""Only the dashboard loads Textual: every other command starts without it."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_api_do_not_import_textual() -> None:
    code = (
        "import sys, tmuxtrain.cli, tmuxtrain.api; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
