"""The predictions table: every `instances_w1` row with its probability and decision.

The talk refitted its scaler and imputer on each scoring batch, so an evaluator's score depended
on who else was in the batch. Scoring here only applies stored parameters, row by row: an
evaluator scored alone gets exactly the probability it gets in any batch.
"""

from __future__ import annotations

import pandas as pd

from churn_assets.contract import INSTANCES_W1_COLUMNS, PREDICTION_COLUMNS
from churn_assets.ml.metrics import predict_labels
from churn_assets.ml.model import Model, predict_proba
from churn_assets.ml.preprocessing import Preprocessor, require_columns


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
