#!/bin/sh
# Regenerate the captured fixtures in tests/fixtures/logs/ from real framework runs.
#
#   python3 -m venv /tmp/fw && /tmp/fw/bin/pip install -r scripts/capture_logs/freeze.txt
#   scripts/capture_logs/capture_all.sh /tmp/fw/bin/python
#
# Each run is a tiny model built from a config, on synthetic data, on the CPU (a minute or
# two in all); its output is captured on a 120x40 pseudo-terminal, as tmux's pipe-pane sees
# it. The hand-written fixtures (formats that cannot run here) are not touched.
set -eu
PY=${1:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/../../tests/fixtures/logs
run() { out=$1; shift; "$PY" "$HERE/pty_run.py" "$OUT/$out" -- "$PY" "$@"; }
run hf_trainer.log "$HERE/hf_trainer.py"
run lightning_rich.log "$HERE/lightning_fit.py" --bar rich
run lightning_tqdm.log "$HERE/lightning_fit.py" --bar tqdm
run keras_v1.log "$HERE/keras_fit.py" --verbose 1
run keras_v2.log "$HERE/keras_fit.py" --verbose 2
run xgboost.log "$HERE/boosting.py" xgboost
run lightgbm.log "$HERE/boosting.py" lightgbm
run tqdm_loop.log "$HERE/tqdm_loop.py"
run fastai.log "$HERE/fastai_fit.py"
run ultralytics.log "$HERE/ultralytics_train.py"
