"""Metric computations on plain arrays: nothing is fitted, nothing is read or written.

Every result is made of Python ints, floats, strings and lists, so it can go straight into
`json.dumps` or Dagster metadata. Degenerate input fails loudly instead of producing NaN (which
`json.dumps` would write as the non-JSON token `NaN`): metrics that are undefined for one class
only (ROC AUC, average precision, lift against a zero base rate) raise ValueError saying so.
Precision of a model that predicts no positive is reported as 0.0 (scikit-learn's
`zero_division=0`), the value that ranks such a model last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

# The talk's result tables (random 0.33 split of 57,700 evaluators), for comparison with ours.
# Confusion matrices are [[TN, FP], [FN, TP]], rows = truth, columns = prediction.
TALK_REPORTED_RESULTS: dict[str, dict[str, Any]] = {
    "logistic_regression": {
        "accuracy": 0.86, "precision": 0.90, "recall": 0.47, "confusion_matrix": [[14296, 239], [2405, 2101]],
    },
    "xgboost": {
        "accuracy": 0.88, "precision": 0.80, "recall": 0.64, "confusion_matrix": [[13814, 721], [1636, 2870]],
    },
    "random_forest": {
        "accuracy": 0.87, "precision": 0.76, "recall": 0.63, "confusion_matrix": [[13651, 884], [1660, 2846]],
    },
    "mlp": {
        "accuracy": 0.87, "precision": 0.83, "recall": 0.58, "confusion_matrix": [[14010, 525], [1875, 2631]],
    },
}


def as_binary_labels(y: Any) -> np.ndarray:
    """1-D int32 array of 0/1; ValueError for missing values or any other value."""
    values = np.asarray(y)
    if values.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {values.shape}")
    if values.dtype == object or values.dtype.kind == "f":
        try:
            values = values.astype(np.float64)  # None -> NaN, caught below
        except (TypeError, ValueError) as exc:  # pd.NA, strings
            raise ValueError("labels must be numeric 0/1 without missing values") from exc
        if np.isnan(values).any():
            raise ValueError("labels contain missing values")
    unexpected = sorted(set(np.unique(values).tolist()) - {0, 1})
    if unexpected:
        raise ValueError(f"labels must be 0 or 1, found {unexpected[:5]}")
    return values.astype(np.int32)


def as_probabilities(proba: Any) -> np.ndarray:
    """1-D float64 array of finite values in [0, 1]; ValueError otherwise."""
    values = np.asarray(proba, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"probabilities must be one-dimensional, got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return values


def predict_labels(proba: Any, threshold: float) -> np.ndarray:
    """The decision rule used everywhere: positive when probability >= threshold (int32 0/1)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    return (as_probabilities(proba) >= threshold).astype(np.int32)


def _paired(y_true: Any, scores: np.ndarray) -> np.ndarray:
    labels = as_binary_labels(y_true)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} predictions")
    if labels.size == 0:
        raise ValueError("no rows to evaluate")
    return labels


def _require_both_classes(labels: np.ndarray, what: str) -> None:
    if labels.min() == labels.max():
        raise ValueError(f"{what} is undefined when every label is {int(labels[0])}: it needs both classes")


def classification_summary(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Hard-prediction metrics, as in the talk's tables (positive class = retained = 1).

    Returns rows, accuracy, precision, recall, f1, confusion_matrix ([[TN, FP], [FN, TP]]) and
    scikit-learn's classification_report text. Defined for one-class input too.
    """
    predicted = as_binary_labels(y_pred)
    labels = _paired(y_true, predicted)
    return {
        "rows": int(labels.size),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "classification_report": classification_report(
            labels, predicted, labels=[0, 1], digits=2, zero_division=0
        ),
    }


def probability_metrics(y_true: Any, proba: Any, threshold: float) -> dict[str, Any]:
    """Ranking and calibration quality of `proba`, plus hard metrics at `threshold`.

    `baseline` is the model that knows nothing: it predicts "not retained" for everyone (its
    accuracy is 1 - base rate) with probability = base rate (its Brier score and log loss), and
    ranks at random (ROC AUC 0.5, average precision = base rate). Raises ValueError when y_true
    holds one class only.
    """
    probabilities = as_probabilities(proba)
    labels = _paired(y_true, probabilities)
    _require_both_classes(labels, "ROC AUC")
    base_rate = float(labels.mean())
    at_threshold = classification_summary(labels, predict_labels(probabilities, threshold))
    return {
        "rows": int(labels.size),
        "positives": int(labels.sum()),
        "positive_rate": base_rate,
        "threshold": float(threshold),
        "predicted_positive_rate": float((probabilities >= threshold).mean()),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1])),
        **{key: at_threshold[key] for key in ("accuracy", "precision", "recall", "f1", "confusion_matrix")},
        "baseline": {
            "accuracy": 1.0 - base_rate,
            "brier": base_rate * (1.0 - base_rate),
            "log_loss": float(-(base_rate * np.log(base_rate) + (1 - base_rate) * np.log(1 - base_rate))),
            "roc_auc": 0.5,
            "pr_auc": base_rate,
        },
    }


def lift_table(y_true: Any, proba: Any, n_bins: int = 10) -> list[dict[str, Any]]:
    """Rows ranked by probability, highest first, cut into `n_bins` near-equal bins (deciles).

    Per bin: bin (1 = highest scores), rows, positives, rate, lift (rate / overall base rate),
    cumulative_positive_share (share of all positives found in this and the higher bins), and the
    bin's min/max probability. Bins differ in size by at most one row (the first bins get the
    extra rows). Tied probabilities keep their input order, so the table is deterministic.
    Raises ValueError without any positive (lift against a zero base rate is undefined).
    """
    probabilities = as_probabilities(proba)
    labels = _paired(y_true, probabilities)
    if not 1 <= n_bins <= labels.size:
        raise ValueError(f"n_bins must be between 1 and the number of rows ({labels.size}), got {n_bins}")
    total_positives = int(labels.sum())
    if total_positives == 0:
        raise ValueError("lift is undefined without any positive label")
    base_rate = total_positives / labels.size
    ranked = np.argsort(-probabilities, kind="stable")
    table, captured = [], 0
    for number, rows in enumerate(np.array_split(ranked, n_bins), start=1):
        positives = int(labels[rows].sum())
        captured += positives
        rate = positives / rows.size
        table.append({
            "bin": number,
            "rows": int(rows.size),
            "positives": positives,
            "rate": float(rate),
            "lift": float(rate / base_rate),
            "cumulative_positive_share": float(captured / total_positives),
            "min_probability": float(probabilities[rows].min()),
            "max_probability": float(probabilities[rows].max()),
        })
    return table


def markdown_talk_table(results: Mapping[str, Mapping[str, Any]], digits: int = 2) -> str:
    """The talk's model comparison as a markdown table, one row per model.

    `results` maps a model name to anything with accuracy, precision, recall and confusion_matrix:
    `talk_protocol(...)["models"]`, or `TALK_REPORTED_RESULTS` for the talk's own numbers.
    """
    lines = [
        "| model | accuracy | precision | recall | confusion matrix [[TN, FP], [FN, TP]] |",
        "|---|---:|---:|---:|---|",
    ]
    for name, result in results.items():
        (tn, fp), (fn, tp) = result["confusion_matrix"]
        scores = " | ".join(f"{result[key]:.{digits}f}" for key in ("accuracy", "precision", "recall"))
        lines.append(f"| {name} | {scores} | [[{tn}, {fp}], [{fn}, {tp}]] |")
    return "\n".join(lines) + "\n"
