"""How good is the model? The talk's random-split comparison, and an honest out-of-time backtest.

`talk_protocol` reproduces the talk's experiment (random 0.33 split, four models, hard predictions
at 0.5) so its table can be compared with the talk's, with one fix: the preprocessing is fitted on
the training part only (the talk fitted it on all rows, leaking test statistics).

A random split mixes every cohort week into both parts, but in production the model always
scores weeks that come after everything it learnt from. `out_of_time` measures that: it trains on
the older cohort weeks with the production recipe (`train_churn_model`) and tests on the latest.

Both return plain JSON-serialisable dicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from churn_assets.contract import DEFAULT_DROP_COLUMNS
from churn_assets.ml.metrics import classification_summary, lift_table, predict_labels, probability_metrics
from churn_assets.ml.model import (
    TALK_XGB_PARAMS,
    choose_threshold,
    cohort_week_keys,
    train_churn_model,
    train_xgboost,
    week_range,
)
from churn_assets.ml.preprocessing import Preprocessor, labels, require_columns

TALK_DECISION_THRESHOLD = 0.5  # the talk used each library's predict(), i.e. a 0.5 cut-off
OUT_OF_TIME_MODEL_VERSION = "out_of_time_backtest"


def talk_trainers(seed: int = 27) -> dict[str, Callable[[np.ndarray, np.ndarray], Any]]:
    """The talk's four models: name -> function fitting one on (X, y), returning a fitted
    estimator with scikit-learn's predict_proba.

    Settings the talk did not give are chosen to converge and stay fast on ~60k rows on two cores:
    logistic regression gets enough iterations to converge on max-abs-scaled counts; the forest
    keeps 100 trees (scikit-learn's default); the MLP stops when a 10% validation split stops
    improving.
    """
    return {
        "logistic_regression": lambda X, y: LogisticRegression(max_iter=2000).fit(X, y),
        "xgboost": lambda X, y: train_xgboost(X, y, {**TALK_XGB_PARAMS, "random_state": seed}),
        "random_forest": lambda X, y: RandomForestClassifier(
            n_estimators=100, random_state=seed, n_jobs=-1
        ).fit(X, y),
        "mlp": lambda X, y: MLPClassifier(random_state=seed, early_stopping=True, max_iter=200).fit(X, y),
    }


def talk_protocol(
    frame: pd.DataFrame,
    drop: Iterable[str] = DEFAULT_DROP_COLUMNS,
    seed: int = 27,
    test_size: float = 0.33,
) -> dict[str, Any]:
    """The talk's experiment on the labelled rows of `frame`.

    Random (unstratified, as in the talk) split; `Preprocessor` fitted on the training part and
    applied to both; each model's hard predictions at 0.5 summarised as in the talk's tables,
    plus ROC AUC. Returns {protocol, seed, test_size, rows: {train, test}, positive_rate: {train,
    test}, feature_names, models: {name: classification_summary + roc_auc + fit_seconds}}; pass
    `result["models"]` to `metrics.markdown_talk_table` for the talk's table.
    """
    train, test = train_test_split(frame, test_size=test_size, random_state=seed)
    preprocessor = Preprocessor.fit(train, drop)
    X_train, X_test = preprocessor.transform(train), preprocessor.transform(test)
    y_train, y_test = labels(train), labels(test)
    models = {}
    for name, fit in talk_trainers(seed).items():
        started = time.perf_counter()
        estimator = fit(X_train, y_train)
        fit_seconds = time.perf_counter() - started
        proba = estimator.predict_proba(X_test)[:, 1]
        models[name] = {
            **classification_summary(y_test, predict_labels(proba, TALK_DECISION_THRESHOLD)),
            "roc_auc": float(roc_auc_score(y_test, proba)),
            "fit_seconds": round(fit_seconds, 3),
        }
    return {
        "protocol": "talk_random_split",
        "seed": seed,
        "test_size": test_size,
        "rows": {"train": int(y_train.size), "test": int(y_test.size)},
        "positive_rate": {"train": float(y_train.mean()), "test": float(y_test.mean())},
        "feature_names": list(preprocessor.feature_names),
        "models": models,
    }


def out_of_time(
    frame: pd.DataFrame,
    test_weeks: int = 3,
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    truth: pd.DataFrame | None = None,
    drop: Iterable[str] = DEFAULT_DROP_COLUMNS,
    threshold_folds: int | None = 5,
) -> dict[str, Any]:
    """Train on the older cohort weeks, test on the latest `test_weeks` ones.

    Training is `train_churn_model`, the production recipe: preprocessor + XGBoost fitted on the
    older weeks only, threshold maximising F1 on their out-of-fold probabilities
    (`threshold_folds`; None = in-sample). Returns:

    - train / test: {weeks: {first, last, weeks}, rows, positives, positive_rate}; the train
      weeks are those the trained model's card says it saw.
    - threshold_rule; model: probability_metrics on the test rows plus `lift` (lift_table).
    - with `truth` (columns instance, true_probability, covering every row): oracle, the same
      metrics for the true probabilities, thresholded by max F1 on the training rows' true
      probabilities (in-sample is fair: the oracle learns nothing), and auc_ratio_to_oracle =
      model ROC AUC / oracle ROC AUC.
    """
    weeks = cohort_week_keys(frame)
    ordered_weeks = sorted(weeks.unique())
    if not 1 <= test_weeks < len(ordered_weeks):
        raise ValueError(
            f"need more cohort weeks than test_weeks={test_weeks} (at least one to train on), "
            f"got {len(ordered_weeks)}"
        )
    in_test = weeks.isin(ordered_weeks[-test_weeks:]).to_numpy()
    train, test = frame[~in_test], frame[in_test]
    trained = train_churn_model(train, OUT_OF_TIME_MODEL_VERSION, params, drop, threshold_folds)
    y_test = labels(test)
    result: dict[str, Any] = {
        "protocol": "out_of_time",
        "train": _part_summary(trained.card.training_weeks, labels(train)),
        "test": _part_summary(weeks[in_test], y_test),
        "threshold_rule": trained.card.threshold_rule,
        "model": _test_metrics(y_test, trained.predict_proba(test), trained.threshold),
    }
    if truth is not None:
        oracle_threshold = choose_threshold(labels(train), _true_probabilities(truth, train))
        result["oracle"] = _test_metrics(y_test, _true_probabilities(truth, test), oracle_threshold)
        result["auc_ratio_to_oracle"] = result["model"]["roc_auc"] / result["oracle"]["roc_auc"]
    return result


def _part_summary(week_keys: Iterable[str], y: np.ndarray) -> dict[str, Any]:
    return {
        "weeks": week_range(week_keys),
        "rows": int(y.size),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()),
    }


def _test_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    return {**probability_metrics(y_true, proba, threshold), "lift": lift_table(y_true, proba)}


def _true_probabilities(truth: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """`truth`'s true_probability for each row of `frame`, in `frame`'s order."""
    require_columns(truth, ["instance", "true_probability"], "truth")
    if truth["instance"].duplicated().any():
        raise ValueError("truth has more than one row for some instance")
    by_instance = truth.set_index("instance")["true_probability"]
    aligned = frame["instance"].map(by_instance)
    if aligned.isna().any():
        raise ValueError(f"truth lacks a true_probability for {int(aligned.isna().sum())} evaluated instance(s)")
    return aligned.to_numpy(dtype=np.float64)


def model_gate(
    candidate_roc_auc: float,
    previous_roc_auc: float | None,
    floor: float,
    margin: float,
) -> dict[str, Any]:
    """Whether a new model may score evaluators.

    It must reach `floor` out-of-time ROC-AUC, and lose no more than `margin` against the last
    promoted model (None: there is none yet). Returns {passed, reasons, ...} for the record.
    """
    reasons = []
    if not candidate_roc_auc >= floor:
        reasons.append(f"out-of-time ROC-AUC {candidate_roc_auc:.4f} is below the floor {floor:.4f}")
    if previous_roc_auc is not None and candidate_roc_auc < previous_roc_auc - margin:
        reasons.append(
            f"out-of-time ROC-AUC {candidate_roc_auc:.4f} is worse than the promoted model's "
            f"{previous_roc_auc:.4f} by more than {margin:.4f}"
        )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "candidate_roc_auc": float(candidate_roc_auc),
        "previous_roc_auc": None if previous_roc_auc is None else float(previous_roc_auc),
        "floor": float(floor),
        "margin": float(margin),
    }

