"""Segments at their boundaries, the outreach value, the save list, and scoring with reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churn_assets.contract import PREDICTION_COLUMNS
from churn_assets.ml.explain import converter_reference, top_reasons
from churn_assets.ml.model import TALK_XGB_PARAMS, train_xgboost
from churn_assets.ml.preprocessing import Preprocessor
from churn_assets.ml.scoring import EXPLAINED_PREDICTION_COLUMNS, score, score_with_reasons
from churn_assets.ml.segments import (
    AT_RISK_WORTH_SAVING,
    LIKELY_TO_CONVERT,
    MIGHT_SWING,
    SAVE_LIST_SEGMENTS,
    UNLIKELY_TO_CONVERT,
    SegmentConfig,
    assign_segments,
    expected_value,
    save_list,
)
from tests.test_explain import modeling_frame

T = 0.4
CONFIG = SegmentConfig(swing_band=0.15, save_floor_ratio=0.5, min_engagement=1)


def below(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def test_segments_at_their_boundaries():
    floor, top = CONFIG.floor(T), T + CONFIG.swing_band
    assert floor == 0.2
    cases = [
        (1.0, LIKELY_TO_CONVERT),
        (top, LIKELY_TO_CONVERT),  # exactly at threshold + band: no longer swinging
        (below(top), MIGHT_SWING),
        (T, MIGHT_SWING),  # exactly at the threshold: predicted to convert (p >= threshold)
        (below(T), AT_RISK_WORTH_SAVING),
        (floor, AT_RISK_WORTH_SAVING),  # exactly at the floor: still worth saving
        (below(floor), UNLIKELY_TO_CONVERT),
        (0.0, UNLIKELY_TO_CONVERT),
    ]
    probability = [p for p, _ in cases]

    segments = assign_segments(probability, [1] * len(cases), T, CONFIG)

    assert segments.tolist() == [segment for _, segment in cases]


def test_only_engaged_evaluators_are_worth_saving():
    probability = [0.3, 0.3, 0.3, 0.3, 0.5, 0.9]
    engagement = [0, np.nan, 1, 5, 0, 0]  # engagement only matters below the threshold
    segments = assign_segments(probability, engagement, T, CONFIG)
    assert segments.tolist() == [UNLIKELY_TO_CONVERT, UNLIKELY_TO_CONVERT, AT_RISK_WORTH_SAVING,
                                 AT_RISK_WORTH_SAVING, MIGHT_SWING, LIKELY_TO_CONVERT]
    stricter = SegmentConfig(min_engagement=2)
    assert assign_segments([0.3, 0.3], [1, 2], T, stricter).tolist() == [UNLIKELY_TO_CONVERT, AT_RISK_WORTH_SAVING]


def test_config_moves_the_boundaries():
    wide = SegmentConfig(swing_band=0.3, save_floor_ratio=0.25)
    assert assign_segments([0.69, 0.7, 0.1, 0.099], [1] * 4, T, wide).tolist() == [
        MIGHT_SWING, LIKELY_TO_CONVERT, AT_RISK_WORTH_SAVING, UNLIKELY_TO_CONVERT]
    with pytest.raises(ValueError, match="threshold"):
        assign_segments([0.5], [1], 1.5, CONFIG)
    with pytest.raises(ValueError, match="probabilities"):
        assign_segments([1.2], [1], T, CONFIG)
    with pytest.raises(ValueError, match="engagement"):
        assign_segments([0.2, 0.3], [1], T, CONFIG)
    with pytest.raises(ValueError, match="swing_band"):
        SegmentConfig(swing_band=-0.1)


def test_expected_value_of_outreach_by_hand():
    config = SegmentConfig(outreach_lift_log_odds=math.log(2), value_per_conversion=3.0)
    # odds doubled: p = 0.5 -> 2/3, so 3 * (2/3 - 1/2) = 0.5; p = 0.2 -> odds 0.25 -> 0.5 -> 1/3
    np.testing.assert_allclose(expected_value([0.5, 0.2, 0.0, 1.0], config), [0.5, 3 * (1 / 3 - 0.2), 0.0, 0.0])
    # rises up to sigmoid(-lift / 2) and falls after it
    grid = np.linspace(0, 1, 1001)
    values = expected_value(grid, SegmentConfig())
    peak = 1 / (1 + math.exp(0.25))
    assert np.all(np.diff(values[grid <= peak]) > 0)
    assert np.all(np.diff(values[grid >= peak]) < 0)


def test_save_list_holds_the_two_segments_sorted_by_expected_value_with_ties_by_instance():
    predictions = pd.DataFrame({
        "instance": [7, 3, 9, 1, 5, 2, 8],
        "eval_start_date": "2026-11-30",
        "w1_active_users": 2,
        "retain_probability": [0.9, 0.3, 0.3, 0.05, 0.45, 0.25, 0.41],
        "segment": [LIKELY_TO_CONVERT, AT_RISK_WORTH_SAVING, AT_RISK_WORTH_SAVING, UNLIKELY_TO_CONVERT,
                    MIGHT_SWING, AT_RISK_WORTH_SAVING, MIGHT_SWING],
        "top_reasons": list("abcdefg"),
        "model_version": "v",
    })

    saved = save_list(predictions)

    assert set(saved["segment"]) == set(SAVE_LIST_SEGMENTS)
    # EV peaks at p = 0.438: 0.45, 0.41 then the tie at 0.3 (instance 3 before 9), then 0.25
    assert saved["instance"].tolist() == [5, 8, 3, 9, 2]
    assert saved["rank"].tolist() == [1, 2, 3, 4, 5]
    assert saved["expected_value"].is_monotonic_decreasing
    assert saved["top_reasons"].tolist() == ["e", "g", "b", "c", "f"]
    assert list(saved.columns) == ["rank", "instance", "eval_start_date", "segment", "retain_probability",
                                   "expected_value", "w1_active_users", "top_reasons", "model_version"]
    np.testing.assert_allclose(saved["expected_value"], expected_value(saved["retain_probability"]))
    with pytest.raises(ValueError, match="segment"):
        save_list(predictions.drop(columns="segment"))


@pytest.fixture(scope="module")
def fitted():
    training = modeling_frame(300, seed=11)
    preprocessor = Preprocessor.fit(training)
    params = {**TALK_XGB_PARAMS, "n_estimators": 20, "n_jobs": 1}
    booster = train_xgboost(preprocessor.transform(training), training["retained"], params,
                            preprocessor.feature_names).get_booster()
    return training, preprocessor, booster


def test_score_with_reasons_adds_segment_and_reasons_after_the_contract_columns(fitted):
    training, preprocessor, booster = fitted
    frame = modeling_frame(120, seed=12).drop(columns="retained")
    reference = converter_reference(training)
    threshold = 0.5

    scored = score_with_reasons(frame, preprocessor, booster, threshold, "v9", reference, CONFIG)

    assert list(scored.columns) == list(EXPLAINED_PREDICTION_COLUMNS) == [*PREDICTION_COLUMNS, "segment", "top_reasons"]
    pd.testing.assert_frame_equal(scored[list(PREDICTION_COLUMNS)], score(frame, preprocessor, booster, threshold, "v9"))
    expected_segments = assign_segments(scored["retain_probability"], frame["w1_active_users"], threshold, CONFIG)
    assert scored["segment"].tolist() == expected_segments.tolist()
    assert len(set(scored["segment"])) >= 3
    pd.testing.assert_series_equal(scored["top_reasons"], top_reasons(frame, preprocessor, booster, reference),
                                   check_names=False)
    # predicted to convert exactly when the segment says so
    converting = scored["segment"].isin([MIGHT_SWING, LIKELY_TO_CONVERT])
    assert (converting == (scored["prediction_retained"] == 1)).all()

    saved = save_list(scored, CONFIG)
    assert len(saved) == scored["segment"].isin(SAVE_LIST_SEGMENTS).sum() > 0
