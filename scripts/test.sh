#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs tmux when missing (apt-get), makes a
# virtual environment in .venv, installs tmuxtrain with its test extras, runs ruff, mypy
# and pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k scheduler -x
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v tmux >/dev/null 2>&1; then
    echo "== installing tmux"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv .venv
    fi
fi
echo "== installing tmuxtrain[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff and mypy"
.venv/bin/ruff check tmuxtrain tests scripts
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
