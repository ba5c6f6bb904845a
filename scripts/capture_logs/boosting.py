"""XGBoost and LightGBM training with an evaluation set on synthetic data (their native
`train` APIs print one line per round)."""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=["xgboost", "lightgbm"])
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 10))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=2000) > 0).astype(float)
    xt, yt, xv, yv = x[:1600], y[:1600], x[1600:], y[1600:]
    if a.lib == "xgboost":
        import xgboost as xgb

        dt, dv = xgb.DMatrix(xt, label=yt), xgb.DMatrix(xv, label=yv)
        xgb.train(
            {"objective": "binary:logistic", "eval_metric": ["logloss", "error"]},
            dt,
            a.rounds,
            evals=[(dt, "train"), (dv, "eval")],
        )
    else:
        import lightgbm as lgb

        dt = lgb.Dataset(xt, label=yt)
        dv = lgb.Dataset(xv, label=yv, reference=dt)
        lgb.train(
            {"objective": "regression", "metric": ["l2", "l1"], "verbose": 1},
            dt,
            a.rounds,
            valid_sets=[dt, dv],
            valid_names=["train", "valid"],
            callbacks=[lgb.log_evaluation(1)],
        )


if __name__ == "__main__":
    main()
