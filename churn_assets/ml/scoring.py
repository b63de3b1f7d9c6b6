"""The predictions table: every `instances_w1` row with its probability and decision.

The talk refitted its scaler and imputer on each scoring batch, so an evaluator's score depended
on who else was in the batch. Scoring here only applies stored parameters, row by row: an
evaluator scored alone gets exactly the probability it gets in any batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from churn_assets.contract import INSTANCES_W1_COLUMNS, PREDICTION_COLUMNS
from churn_assets.ml.explain import top_reasons
from churn_assets.ml.metrics import predict_labels
from churn_assets.ml.model import Model, predict_proba
from churn_assets.ml.preprocessing import Preprocessor, require_columns
from churn_assets.ml.segments import SegmentConfig, assign_segments

# The predictions table with reasons: the contract's columns unchanged, then these two.
EXPLAINED_PREDICTION_COLUMNS: tuple[str, ...] = (*PREDICTION_COLUMNS, "segment", "top_reasons")


def score(
    frame: pd.DataFrame,
    preprocessor: Preprocessor,
    booster: Model,
    threshold: float,
    model_version: str,
) -> pd.DataFrame:
    """`frame`'s instances_w1 columns (contract order, same index), then prediction_retained
    (int 0/1: retain_probability >= threshold), retain_probability (float in [0, 1]) and
    model_version. Extra input columns are not carried over."""
    require_columns(frame, INSTANCES_W1_COLUMNS, "instances_w1 frame")
    probability = predict_proba(booster, preprocessor.transform(frame), preprocessor.feature_names)
    predictions = frame.loc[:, list(INSTANCES_W1_COLUMNS)].copy()
    predictions["prediction_retained"] = predict_labels(probability, threshold).astype("int64")
    predictions["retain_probability"] = probability
    predictions["model_version"] = str(model_version)
    return predictions[list(PREDICTION_COLUMNS)]


def score_with_reasons(
    frame: pd.DataFrame,
    preprocessor: Preprocessor,
    booster: Model,
    threshold: float,
    model_version: str,
    reference: Mapping[str, float] | None = None,
    segment_config: SegmentConfig = SegmentConfig(),
    reasons: int = 3,
) -> pd.DataFrame:
    """`score`'s table (contract columns, same order and values), then `segment` (segments.py)
    and `top_reasons` (explain.py: the `reasons` features that moved the score most, as text;
    `reference` is the converters' typical values stored beside the model, or None)."""
    predictions = score(frame, preprocessor, booster, threshold, model_version)
    require_columns(frame, [segment_config.engagement_feature], "instances_w1 frame")
    predictions["segment"] = assign_segments(
        predictions["retain_probability"].to_numpy(),
        frame[segment_config.engagement_feature].to_numpy(),
        threshold,
        segment_config,
    )
    predictions["top_reasons"] = top_reasons(frame, preprocessor, booster, reference, reasons)
    return predictions[list(EXPLAINED_PREDICTION_COLUMNS)]
