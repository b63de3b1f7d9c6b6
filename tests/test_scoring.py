"""Scoring: the predictions table, and an evaluator's score independent of its batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_W1_COLUMNS, PREDICTION_COLUMNS
from churn_assets.ml.model import TALK_XGB_PARAMS, load_model, save_model, train_xgboost
from churn_assets.ml.preprocessing import Preprocessor
from churn_assets.ml.scoring import score

THRESHOLD = 0.3


def w1_frame(rows: int, seed: int, activity: float = 3.0) -> pd.DataFrame:
    """instances_w1 rows; `activity` shifts the whole feature distribution."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.poisson(activity, (rows, len(FEATURE_COLUMNS))).astype(float), columns=list(FEATURE_COLUMNS)
    )
    frame = frame.mask(rng.random(frame.shape) < 0.05)  # some missing values to impute
    frame.insert(0, "instance", np.arange(rows) + 1000 * seed)
    frame.insert(1, "eval_start_date", "2026-09-07")
    return frame


@pytest.fixture(scope="module")
def fitted():
    training = w1_frame(300, seed=1)
    retained = (training["number_of_issues"].fillna(0) + training["issues_viewed"].fillna(0) > 6).astype(int)
    preprocessor = Preprocessor.fit(training)
    params = {**TALK_XGB_PARAMS, "n_estimators": 20}
    model = train_xgboost(preprocessor.transform(training), retained, params, preprocessor.feature_names)
    return preprocessor, model


def test_predictions_table_layout(fitted):
    preprocessor, model = fitted
    frame = w1_frame(50, seed=2)

    predictions = score(frame.assign(extra_column=1), preprocessor, model, THRESHOLD, "v7")

    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    pd.testing.assert_frame_equal(predictions[list(INSTANCES_W1_COLUMNS)], frame)
    assert predictions["prediction_retained"].dtype == np.int64
    assert set(predictions["prediction_retained"]) == {0, 1}
    assert predictions["retain_probability"].between(0, 1).all()
    assert (predictions["prediction_retained"] == (predictions["retain_probability"] >= THRESHOLD)).all()
    assert (predictions["model_version"] == "v7").all()


def test_an_evaluator_scores_the_same_alone_and_in_any_batch(fitted):
    preprocessor, model = fitted
    evaluator = w1_frame(1, seed=3)
    batch = pd.concat([w1_frame(40, seed=4), evaluator, w1_frame(40, seed=5)], ignore_index=True)
    different_batch = pd.concat([w1_frame(80, seed=6, activity=30.0), evaluator], ignore_index=True)

    alone = score(evaluator, preprocessor, model, THRESHOLD, "v")
    in_batch = score(batch, preprocessor, model, THRESHOLD, "v").iloc[[40]]
    in_different_batch = score(different_batch, preprocessor, model, THRESHOLD, "v").iloc[[80]]

    for other in (in_batch, in_different_batch):
        pd.testing.assert_frame_equal(other.reset_index(drop=True), alone, check_exact=True)


def test_scoring_with_artefacts_loaded_from_disk_is_identical(tmp_path, fitted):
    preprocessor, model = fitted
    frame = w1_frame(60, seed=7)
    loaded_preprocessor = Preprocessor.from_json(preprocessor.to_json())
    loaded_model = load_model(save_model(model, tmp_path / "model.ubj"))

    pd.testing.assert_frame_equal(
        score(frame, loaded_preprocessor, loaded_model, THRESHOLD, "v"),
        score(frame, preprocessor, model, THRESHOLD, "v"),
        check_exact=True,
    )


def test_threshold_decides_the_prediction(fitted):
    preprocessor, model = fitted
    frame = w1_frame(30, seed=8)
    assert score(frame, preprocessor, model, 0.0, "v")["prediction_retained"].eq(1).all()
    assert score(frame, preprocessor, model, 1.0, "v")["prediction_retained"].eq(0).all()
    with pytest.raises(ValueError, match="threshold"):
        score(frame, preprocessor, model, 1.5, "v")


def test_missing_input_column_is_named(fitted):
    preprocessor, model = fitted
    with pytest.raises(ValueError, match="eval_start_date"):
        score(w1_frame(3, seed=9).drop(columns="eval_start_date"), preprocessor, model, THRESHOLD, "v")
    with pytest.raises(ValueError, match="mobile_usage"):
        score(w1_frame(3, seed=9).drop(columns="mobile_usage"), preprocessor, model, THRESHOLD, "v")


def test_empty_input_gives_an_empty_table(fitted):
    preprocessor, model = fitted
    predictions = score(w1_frame(0, seed=10), preprocessor, model, THRESHOLD, "v")
    assert predictions.empty and list(predictions.columns) == list(PREDICTION_COLUMNS)
