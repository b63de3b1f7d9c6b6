"""Evaluation: the talk's random-split protocol and the out-of-time backtest."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS
from churn_assets.ml.evaluation import out_of_time, talk_protocol
from churn_assets.ml.metrics import markdown_talk_table
from churn_assets.ml.model import TALK_XGB_PARAMS
from churn_assets.ml.preprocessing import Preprocessor

FAST_PARAMS = {**TALK_XGB_PARAMS, "n_estimators": 30, "n_jobs": 1}
WEEKS = [date(2026, 8, 3) + timedelta(weeks=i) for i in range(6)]


def cohorts(rows_per_week: int = 150, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Six cohort weeks of evaluators and each one's true conversion probability."""
    rng = np.random.default_rng(seed)
    rows = rows_per_week * len(WEEKS)
    activity = rng.gamma(1.5, 2.0, rows)
    frame = pd.DataFrame(
        rng.poisson(activity[:, None], (rows, len(FEATURE_COLUMNS))).astype(float), columns=list(FEATURE_COLUMNS)
    )
    true_probability = 1 / (1 + np.exp(-(0.5 * activity - 2.5)))
    frame["retained"] = rng.binomial(1, true_probability)
    frame["instance"] = np.arange(rows)
    frame["eval_start_date"] = [
        str(WEEKS[i // rows_per_week] + timedelta(days=int(day))) for i, day in enumerate(rng.integers(0, 7, rows))
    ]
    frame = frame.mask(pd.DataFrame(rng.random(frame.shape) < 0.02, columns=frame.columns).assign(
        retained=False, instance=False, eval_start_date=False))
    truth = pd.DataFrame({"instance": frame["instance"], "true_probability": true_probability})
    return frame[list(INSTANCES_MODELING_COLUMNS)], truth


def test_out_of_time_trains_on_older_weeks_and_tests_on_the_latest():
    frame, truth = cohorts()

    result = out_of_time(frame, test_weeks=2, params=FAST_PARAMS, truth=truth, threshold_folds=3)

    train_weeks, test_weeks = result["train"]["weeks"], result["test"]["weeks"]
    assert train_weeks["last"] < test_weeks["first"]
    assert train_weeks["weeks"] == [str(w) for w in WEEKS[:4]]
    assert test_weeks["weeks"] == [str(w) for w in WEEKS[4:]]
    assert (result["train"]["rows"], result["test"]["rows"]) == (600, 300)
    assert result["threshold_rule"] == "max_f1_out_of_fold"
    model, oracle = result["model"], result["oracle"]
    assert model["rows"] == oracle["rows"] == 300
    assert len(model["lift"]) == 10 and sum(row["rows"] for row in model["lift"]) == 300
    assert result["auc_ratio_to_oracle"] == model["roc_auc"] / oracle["roc_auc"]
    assert 0.5 < model["roc_auc"] <= oracle["roc_auc"] + 0.05
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_out_of_time_never_learns_from_the_test_weeks():
    frame, _ = cohorts()
    in_test = frame["eval_start_date"] >= str(WEEKS[4])
    # Poison the test weeks: wildly different features and inverted labels.
    poisoned = frame.copy()
    poisoned.loc[in_test, list(FEATURE_COLUMNS)] *= 1000
    poisoned.loc[in_test, "retained"] = 1 - poisoned.loc[in_test, "retained"]

    clean = out_of_time(frame, test_weeks=2, params=FAST_PARAMS, threshold_folds=None)
    dirty = out_of_time(poisoned, test_weeks=2, params=FAST_PARAMS, threshold_folds=None)

    assert dirty["train"] == clean["train"]
    assert dirty["model"]["threshold"] == clean["model"]["threshold"]
    assert "oracle" not in clean


def test_out_of_time_refuses_too_few_weeks_and_incomplete_truth():
    frame, truth = cohorts(rows_per_week=60)
    with pytest.raises(ValueError, match="cohort weeks"):
        out_of_time(frame, test_weeks=6, params=FAST_PARAMS, threshold_folds=None)
    with pytest.raises(ValueError, match="truth lacks"):
        out_of_time(frame, test_weeks=1, params=FAST_PARAMS, truth=truth.iloc[:-5], threshold_folds=None)


def test_talk_protocol_returns_the_four_models(monkeypatch):
    frame, _ = cohorts(rows_per_week=100)
    fitted_on = []
    original_fit = Preprocessor.fit.__func__

    def recording_fit(cls, rows, drop):
        fitted_on.append(set(rows["instance"]))
        return original_fit(cls, rows, drop)

    monkeypatch.setattr(Preprocessor, "fit", classmethod(recording_fit))

    result = talk_protocol(frame, seed=27, test_size=0.33)

    assert set(result["models"]) == {"logistic_regression", "xgboost", "random_forest", "mlp"}
    for summary in result["models"].values():
        assert {"accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"} <= set(summary)
        assert sum(map(sum, summary["confusion_matrix"])) == result["rows"]["test"]
        assert 0.5 < summary["roc_auc"] <= 1.0
    assert result["rows"] == {"train": 402, "test": 198}
    # The preprocessing saw the training part only (the talk fitted it on every row).
    assert len(fitted_on) == 1 and len(fitted_on[0]) == result["rows"]["train"]
    json.dumps(result, allow_nan=False)
    assert len(markdown_talk_table(result["models"]).strip().splitlines()) == 6
