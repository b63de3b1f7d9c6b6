"""Reasons per evaluator: XGBoost's own contributions, and the text a marketer reads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xgboost

from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS
from churn_assets.ml.explain import (
    BIAS,
    FEATURE_LABELS,
    REASON_SEPARATOR,
    contribution_matrix,
    contributions,
    converter_reference,
    margins,
    mean_abs_shap,
    reason_text,
    reference_from_json,
    reference_to_json,
    top_reason_table,
    top_reasons,
)
from churn_assets.ml.model import TALK_XGB_PARAMS, predict_proba, train_xgboost
from churn_assets.ml.preprocessing import Preprocessor

FAST = {**TALK_XGB_PARAMS, "n_estimators": 25, "n_jobs": 1}


def modeling_frame(rows: int, seed: int) -> pd.DataFrame:
    """instances_modeling rows whose label depends on a few features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.poisson(4.0, (rows, len(FEATURE_COLUMNS))).astype(float), columns=list(FEATURE_COLUMNS))
    frame["number_of_issues"] *= 3  # scales far from 1: scaled and raw values differ
    frame = frame.mask(rng.random(frame.shape) < 0.03)
    frame["instance"] = np.arange(rows) + 10_000 * seed
    frame["eval_start_date"] = "2026-09-07"
    score = frame["number_of_issues"].fillna(12) / 3 + frame["w1_agg_active_users"].fillna(4) - frame["mobile_usage"].fillna(4)
    frame["retained"] = (score + rng.normal(0, 1.5, rows) > 5).astype(int)
    return frame[list(INSTANCES_MODELING_COLUMNS)]


@pytest.fixture(scope="module")
def fitted():
    training = modeling_frame(400, seed=1)
    preprocessor = Preprocessor.fit(training)
    booster = train_xgboost(preprocessor.transform(training), training["retained"], FAST,
                            preprocessor.feature_names).get_booster()
    return training, preprocessor, booster


def test_contributions_plus_bias_equal_the_margin_and_the_probability(fitted):
    _, preprocessor, booster = fitted
    frame = modeling_frame(80, seed=2)
    X = preprocessor.transform(frame)

    table = contributions(frame, preprocessor, booster)

    assert list(table.columns) == [*preprocessor.feature_names, BIAS]
    assert table.index.equals(frame.index)
    margin = margins(booster, X, preprocessor.feature_names)
    np.testing.assert_allclose(table.sum(axis=1).to_numpy(), margin, atol=1e-4)
    # ... and the margin is the score the predictions table shows
    proba = predict_proba(booster, X, preprocessor.feature_names)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), proba, rtol=1e-5)
    # the same numbers XGBoost returns when asked directly
    direct = booster.predict(xgboost.DMatrix(X, feature_names=list(preprocessor.feature_names)), pred_contribs=True)
    np.testing.assert_array_equal(table.to_numpy(), direct.astype(np.float64))


def test_the_reasons_are_the_largest_contributions_in_order(fitted):
    _, preprocessor, booster = fitted
    frame = modeling_frame(60, seed=3)
    table = contributions(frame, preprocessor, booster).drop(columns=BIAS)

    reasons = top_reason_table(frame, preprocessor, booster, k=3)

    for index, row in table.iterrows():
        ordered = row.abs().sort_values(ascending=False, kind="stable")
        expected = [f for f in ordered.index[:3] if row[f] != 0]
        named = reasons[reasons["row"] == index].sort_values("rank")
        assert named["feature"].tolist() == expected
        np.testing.assert_array_equal(named["contribution"].to_numpy(), row[expected].to_numpy())
        # the raw value, not the scaled one the model saw
        for feature, value in zip(named["feature"], named["value"]):
            assert (pd.isna(value) and pd.isna(frame.at[index, feature])) or value == frame.at[index, feature]


def test_reason_text_names_features_in_order_with_sign_raw_value_and_reference(fitted):
    training, preprocessor, booster = fitted
    frame = modeling_frame(40, seed=4)
    reference = converter_reference(training)
    table = contributions(frame, preprocessor, booster).drop(columns=BIAS)

    texts = top_reasons(frame, preprocessor, booster, reference, k=3)

    assert texts.index.equals(frame.index) and len(texts) == len(frame)
    for index, text in texts.items():
        row = table.loc[index]
        top = row.abs().sort_values(ascending=False, kind="stable").index[:3]
        parts = text.split(REASON_SEPARATOR)
        assert len(parts) == 3
        for part, feature in zip(parts, top):
            assert FEATURE_LABELS[feature] in part
            assert ("towards converting" in part) == (row[feature] > 0)
            assert ("away from converting" in part) == (row[feature] < 0)
            value = frame.at[index, feature]
            typical = reference[feature]
            if pd.isna(value):
                assert "unknown" in part
            else:
                assert f"({int(value)} vs " in part
                if value < typical and row[feature] < 0:
                    assert part.startswith(f"few {FEATURE_LABELS[feature]} (")
                elif value > typical and row[feature] > 0:
                    assert part.startswith(f"many {FEATURE_LABELS[feature]} (")
                else:
                    assert part.startswith(f"{FEATURE_LABELS[feature]} (")
            assert part.endswith(f"odds x{math.exp(row[feature]):.2g}")


def test_reason_text_reads_like_the_issue():
    assert reason_text("w1_active_users", 2, -0.8, {"w1_active_users": 6}) == (
        "few active users in week 1 (2 vs 6 typical for converters): pushes away from converting, odds x0.45"
    )
    assert reason_text("number_of_issues", 14.0, 0.7, {"number_of_issues": 6.5}) == (
        "many issues created (14 vs 6.5 typical for converters): pushes towards converting, odds x2"
    )
    assert reason_text("number_of_issues", 14, 0.7) == "issues created: 14: pushes towards converting, odds x2"
    # below the converters' typical value, yet above most evaluators: no "few" beside a push towards
    assert reason_text("w1_agg_active_users", 10, 0.79, {"w1_agg_active_users": 13}) == (
        "user-days of activity in week 1 (10 vs 13 typical for converters): pushes towards converting, odds x2.2"
    )
    assert reason_text("issues_viewed", float("nan"), -0.1, {"issues_viewed": 9}, imputed_as=4) == (
        "issue views (unknown, counted as 4, vs 9 typical for converters): pushes away from converting, odds x0.9"
    )


def test_every_contract_feature_has_a_label():
    assert set(FEATURE_LABELS) == set(FEATURE_COLUMNS)
    assert len(set(FEATURE_LABELS.values())) == len(FEATURE_LABELS)


def test_converter_reference_is_the_median_of_retained_rows_and_round_trips_as_json():
    frame = pd.DataFrame(0.0, index=range(5), columns=list(INSTANCES_MODELING_COLUMNS))
    frame["retained"] = [1, 1, 1, 0, 1]
    frame["number_of_issues"] = [2, 4, 9, 100, np.nan]  # converters: 2, 4, 9 (the missing one skipped)
    frame["w1_active_users"] = [1, 2, 3, 50, 4]  # converters: 1, 2, 3, 4 -> 2.5

    reference = converter_reference(frame)

    assert reference["number_of_issues"] == 4.0
    assert reference["w1_active_users"] == 2.5
    assert set(reference) == set(FEATURE_COLUMNS)
    assert reference_from_json(reference_to_json(reference)) == reference
    with pytest.raises(ValueError, match="no retained row"):
        converter_reference(frame.assign(retained=0))


def test_mean_abs_shap_is_the_mean_absolute_contribution_largest_first(fitted):
    training, preprocessor, booster = fitted
    X = preprocessor.transform(training)

    importance = mean_abs_shap(booster, X, preprocessor.feature_names)

    direct = np.abs(contribution_matrix(booster, X).drop(columns=BIAS)).mean(axis=0)
    assert set(importance) == set(preprocessor.feature_names)
    for feature, value in importance.items():
        assert value == pytest.approx(direct[feature])
    values = list(importance.values())
    assert values == sorted(values, reverse=True)
    # the label was built from issues and active user-days: the model leans on them
    assert set(list(importance)[:3]) >= {"number_of_issues", "w1_agg_active_users"}


def test_features_that_do_not_match_the_model_are_refused(fitted):
    _, preprocessor, booster = fitted
    X = preprocessor.transform(modeling_frame(5, seed=5))
    with pytest.raises(ValueError, match="do not match"):
        contribution_matrix(booster, X, list(reversed(preprocessor.feature_names)))
    with pytest.raises(ValueError, match="feature columns"):
        contribution_matrix(booster, X[:, :-1])


def test_no_rows_give_no_reasons(fitted):
    _, preprocessor, booster = fitted
    empty = modeling_frame(0, seed=6)
    assert top_reasons(empty, preprocessor, booster).empty
    assert contributions(empty, preprocessor, booster).empty
