"""The gates that keep the layout of shared/DESIGN.md: core/ does no I/O (and the lint rule
that says so really fires), the API does not import the scheduler loop, the CLI and the
dashboard import neither the store nor a runner, and no module or class outgrows what one
person can hold in their head."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tmuxtrain"
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 400


def lint(path: str, code: str) -> subprocess.CompletedProcess[str]:
    """ruff on `code` as if it were the file `path` of this project."""
    return subprocess.run(
        [RUFF, "check", "--no-cache", "--stdin-filename", path, "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\n\nprint(subprocess.run)\n",
        "import os\n\nprint(os.getcwd)\n",
        "import sqlite3\n\nprint(sqlite3.connect)\n",
        "import time\n\nprint(time.time())\n",
        "from tmuxtrain.store import Store\n\nprint(Store)\n",
        "import regex\n\nprint(regex.compile)\n",
    ],
)
def test_an_io_import_in_core_fails_lint(code: str) -> None:
    result = lint("tmuxtrain/core/units.py", code)
    assert result.returncode == 1 and "TID251" in result.stdout, result.stdout
    # The same code outside core/ passes.
    assert lint("tmuxtrain/daemon/loop.py", code).returncode == 0


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def offending(files: list[Path], banned: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for f in files:
        found = sorted(
            m for m in imports(f) if any(m == b or m.startswith(b + ".") for b in banned)
        )
        if found:
            bad[str(f.relative_to(ROOT))] = found
    return bad


def test_the_import_rules_of_the_design_hold() -> None:
    core = sorted((PACKAGE / "core").glob("*.py"))
    outside = ("store", "runners", "daemon", "gpus", "api", "cli", "ui", "procs", "settings")
    assert not offending(core, tuple(f"tmuxtrain.{m}" for m in outside))
    assert not offending(sorted((PACKAGE / "api").glob("*.py")), ("tmuxtrain.daemon",))
    cli = sorted(PACKAGE.glob("cli*.py")) + sorted((PACKAGE / "cli").glob("*.py"))
    banned = ("tmuxtrain.store", "tmuxtrain.runners", "tmuxtrain.daemon")
    assert not offending(cli, banned)
    assert not offending(sorted((PACKAGE / "ui").glob("*.py")), banned)


def test_no_module_or_class_outgrows_its_one_job() -> None:
    too_long = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        lines = f.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            too_long[str(f.relative_to(ROOT))] = lines
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_long[f"{f.relative_to(ROOT)}:{node.name}"] = size
    assert not too_long, too_long


def test_the_scheduler_loop_stays_a_composer() -> None:
    """The loop only orders the parts: a few hundred lines at most."""
    assert (PACKAGE / "daemon" / "loop.py").read_text().count("\n") <= 350
