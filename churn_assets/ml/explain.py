"""Why the model scored an evaluator as it did, in words a marketer can read.

The reasons come from XGBoost's own per-row SHAP values (`pred_contribs=True`, TreeSHAP, no extra
dependency): for each row, one contribution per model feature plus a bias column (the last one),
in log-odds, such that

    sum(contributions of the row) + bias == the row's margin (`output_margin=True`)
    retain_probability == sigmoid(margin)

A positive contribution pushes the evaluator towards converting, a negative one away from it.
exp(contribution) is the factor by which that feature multiplies the evaluator's odds of
converting, compared with the model's average evaluator: that is the size the text shows.

Contributions live in the model's (imputed, scaled) feature space; the text shows the raw week-1
values from the input row, beside the value typical for converters (`converter_reference`, the
median of each feature among the retained evaluators of the training window). The reference is
computed when the model is trained and stored beside it as plain JSON
(`models/churn_model/v0/WEEK/converter_reference.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xgboost

from churn_assets.contract import FEATURE_COLUMNS, LABEL_COLUMN
from churn_assets.ml.model import Model, as_booster
from churn_assets.ml.preprocessing import Preprocessor, labels, require_columns

BIAS = "bias"
CONVERTER_REFERENCE_FILE = "converter_reference.json"
REASON_SEPARATOR = "; "

# A plural noun phrase per contract feature: the reasons read "few <label>" / "many <label>".
FEATURE_LABELS: dict[str, str] = {
    "number_of_projects": "projects created",
    "number_of_issues": "issues created",
    "number_of_invites": "teammates invited",
    "w1_active_users": "active users in week 1",
    "w1_agg_active_users": "user-days of activity in week 1",
    "w1_max_active_users": "users active on the busiest day",
    "watchers_added": "watchers added to issues",
    "issues_updated": "issue updates",
    "issues_commented": "issue comments",
    "issues_assigned": "issues assigned",
    "at_mentions": "@mentions",
    "issues_viewed": "issue views",
    "issues_completed": "issues completed",
    "mobile_usage": "actions on the mobile app",
    "sprint_started": "sprints started",
    "sprint_finished": "sprints finished",
}
assert set(FEATURE_LABELS) == set(FEATURE_COLUMNS), "every contract feature needs a label"


def feature_label(feature: str) -> str:
    return FEATURE_LABELS.get(feature, feature.replace("_", " "))


# --------------------------------------------------------------------------------------------
# contributions


def _model_feature_names(booster: xgboost.Booster, feature_names: Sequence[str] | None) -> list[str] | None:
    model_names = booster.feature_names
    if feature_names is not None and model_names is not None and list(feature_names) != list(model_names):
        raise ValueError(f"features {list(feature_names)} do not match the model's {list(model_names)}")
    names = model_names if model_names is not None else feature_names
    return list(names) if names is not None else None


def _dmatrix(booster: xgboost.Booster, X: np.ndarray, feature_names: Sequence[str] | None) -> tuple[xgboost.DMatrix, list[str]]:
    matrix = np.asarray(X, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != booster.num_features():
        raise ValueError(f"model expects {booster.num_features()} feature columns, got shape {matrix.shape}")
    names = _model_feature_names(booster, feature_names)
    dmatrix = xgboost.DMatrix(matrix, feature_names=names)
    return dmatrix, names or [f"f{i}" for i in range(matrix.shape[1])]


def contribution_matrix(model: Model, X: np.ndarray, feature_names: Sequence[str] | None = None) -> pd.DataFrame:
    """XGBoost's per-row SHAP values of the preprocessed matrix `X` (log-odds, float64).

    One column per model feature, in the model's order, then `bias`; each row sums to the row's
    margin (see `margins`).
    """
    booster = as_booster(model)
    dmatrix, names = _dmatrix(booster, X, feature_names)
    columns = [*names, BIAS]
    if dmatrix.num_row() == 0:
        return pd.DataFrame(np.empty((0, len(columns))), columns=columns)
    values = booster.predict(dmatrix, pred_contribs=True)
    return pd.DataFrame(np.asarray(values, dtype=np.float64), columns=columns)


def margins(model: Model, X: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
    """The raw log-odds scores (`output_margin=True`) of the rows of `X`."""
    booster = as_booster(model)
    dmatrix, _ = _dmatrix(booster, X, feature_names)
    if dmatrix.num_row() == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(booster.predict(dmatrix, output_margin=True), dtype=np.float64)


def contributions(frame: pd.DataFrame, preprocessor: Preprocessor, model: Model) -> pd.DataFrame:
    """Per-row contributions of `frame` (raw feature rows), indexed like `frame`."""
    table = contribution_matrix(model, preprocessor.transform(frame), preprocessor.feature_names)
    table.index = frame.index
    return table


def mean_abs_shap(model: Model, X: np.ndarray, feature_names: Sequence[str] | None = None) -> dict[str, float]:
    """Global importance: each model feature's mean |contribution| over the rows of `X`,
    largest first (ties in the model's feature order); the bias is not a feature."""
    table = contribution_matrix(model, X, feature_names).drop(columns=BIAS)
    if table.empty:
        raise ValueError("mean |SHAP| needs at least one row")
    importance = table.abs().mean(axis=0)
    order = sorted(range(len(importance)), key=lambda i: (-importance.iloc[i], i))
    return {str(importance.index[i]): float(importance.iloc[i]) for i in order}


# --------------------------------------------------------------------------------------------
# the converters' reference values


def converter_reference(training_frame: pd.DataFrame) -> dict[str, float]:
    """Median of every contract feature among the retained (= 1) rows of the training window.

    Computed on the rows the model is trained on and stored beside it; JSON-ready (missing values
    are skipped; a feature missing in every converter row is left out).
    """
    require_columns(training_frame, [LABEL_COLUMN, *FEATURE_COLUMNS], "training frame")
    converters = training_frame.loc[labels(training_frame) == 1, list(FEATURE_COLUMNS)]
    if converters.empty:
        raise ValueError("the training frame has no retained row: no converter reference")
    medians = converters.apply(pd.to_numeric, errors="coerce").median(axis=0, skipna=True)
    return {feature: float(value) for feature, value in medians.items() if not pd.isna(value)}


def reference_to_json(reference: Mapping[str, float]) -> str:
    return json.dumps({k: float(v) for k, v in reference.items()}, indent=2, allow_nan=False)


def reference_from_json(text: str | bytes) -> dict[str, float]:
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise ValueError("a converter reference is a JSON object of feature -> number")
    return {str(k): float(v) for k, v in data.items()}


# --------------------------------------------------------------------------------------------
# reasons


def format_value(value: Any) -> str:
    """A count as an integer, a median like 2.5 with one decimal."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.1f}"


def format_odds_factor(contribution: float) -> str:
    factor = math.exp(contribution)
    return f"{factor:.2g}" if factor < 10 else f"{factor:.0f}"


def reason_text(
    feature: str,
    value: Any,
    contribution: float,
    reference: Mapping[str, float] | None = None,
    imputed_as: float | None = None,
) -> str:
    """One reason: the raw value against the converters' typical value, direction and size.

    e.g. `few active users in week 1 (2 vs 6 typical for converters): pushes away from
    converting, odds x0.45`. The odds factor is exp(contribution): x2 doubles the evaluator's odds.
    "few" / "many" are said only when they agree with the direction of the push.
    """
    label = feature_label(feature)
    typical = None if reference is None else reference.get(feature)
    if value is None or pd.isna(value):
        shown = "unknown" + ("" if imputed_as is None else f", counted as {format_value(imputed_as)}")
        what = f"{label} ({shown}"
        what += ")" if typical is None else f", vs {format_value(typical)} typical for converters)"
    elif typical is None:
        what = f"{label}: {format_value(value)}"
    else:
        # "few"/"many" only when the comparison with converters and the push agree: SHAP values are
        # relative to the average evaluator, so 10 user-days can push towards converting while
        # converters typically have 13; then the numbers speak alone.
        value = float(value)
        size = "few " if value < typical and contribution < 0 else "many " if value > typical and contribution > 0 else ""
        what = f"{size}{label} ({format_value(value)} vs {format_value(typical)} typical for converters)"
    direction = "pushes towards converting" if contribution > 0 else "pushes away from converting"
    return f"{what}: {direction}, odds x{format_odds_factor(contribution)}"


def top_contributions(table: pd.DataFrame, k: int = 3) -> list[list[tuple[str, float]]]:
    """Per row, the (feature, contribution) pairs of the k largest |contribution|, largest first.

    Ties go to the feature earlier in the model's order; features that contributed exactly
    nothing (unused by the trees for that row) are never reasons.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    features = [c for c in table.columns if c != BIAS]
    values = table[features].to_numpy(dtype=np.float64)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    rows = []
    for row, picks in zip(values, order):
        rows.append([(features[j], float(row[j])) for j in picks if row[j] != 0.0])
    return rows


def top_reason_table(
    frame: pd.DataFrame, preprocessor: Preprocessor, model: Model, k: int = 3
) -> pd.DataFrame:
    """Long table of each row's top reasons: row (frame's index), rank (1..k), feature,
    contribution (log-odds) and the raw value."""
    table = contributions(frame, preprocessor, model)
    records = []
    for index, picks in zip(frame.index, top_contributions(table, k)):
        for rank, (feature, contribution) in enumerate(picks, start=1):
            records.append((index, rank, feature, contribution, frame.at[index, feature]))
    return pd.DataFrame(records, columns=["row", "rank", "feature", "contribution", "value"])


def top_reasons(
    frame: pd.DataFrame,
    preprocessor: Preprocessor,
    model: Model,
    reference: Mapping[str, float] | None = None,
    k: int = 3,
) -> pd.Series:
    """Per row of `frame`, its k strongest reasons as text joined by "; ", indexed like `frame`.

    `reference` is the converters' typical values (`converter_reference`); without it the text
    shows the evaluator's value only.
    """
    table = contributions(frame, preprocessor, model)
    imputed = dict(zip(preprocessor.feature_names, preprocessor.medians))
    texts = []
    for index, picks in zip(frame.index, top_contributions(table, k)):
        texts.append(REASON_SEPARATOR.join(
            reason_text(feature, frame.at[index, feature], contribution, reference, imputed.get(feature))
            for feature, contribution in picks
        ))
    return pd.Series(texts, index=frame.index, dtype=object, name="top_reasons")
