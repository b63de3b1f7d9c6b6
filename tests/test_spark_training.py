"""Distributed training (xgboost.spark): same preprocessing, same file, same scoring, same quality."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_assets.assets.ml import churn_model, preprocessor
from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS
from churn_assets.features import FeatureTable, write_weekly_csv
from churn_assets.ml.explain import converter_reference
from churn_assets.ml.model import TALK_XGB_PARAMS, train_churn_model
from churn_assets.ml.preprocessing import Preprocessor
from churn_assets.ml.scoring import score
from churn_assets.ml.spark_training import (
    DEFAULT_SPARK_TRAINING_MIN_ROWS,
    SPARK_TRAINING_MIN_ROWS_ENV,
    spark_training_min_rows,
    spark_xgb_params,
    train_churn_model_on_spark,
    use_spark_training,
)
from churn_assets.registry import read_model, write_model

FAST_PARAMS = {**TALK_XGB_PARAMS, "n_estimators": 60, "n_jobs": 1}
WEEKS = ("2026-09-07", "2026-09-14", "2026-09-21")


def labelled_frame(rows: int, seed: int) -> pd.DataFrame:
    """Evaluators of three cohort weeks whose conversion rises with issues and active users;
    some feature values missing (the preprocessor imputes them)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.poisson(4.0, (rows, len(FEATURE_COLUMNS))).astype(float), columns=list(FEATURE_COLUMNS))
    logit = 0.35 * frame["number_of_issues"] + 0.25 * frame["w1_agg_active_users"] - 0.2 * frame["mobile_usage"] - 2.2
    frame["retained"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    frame.loc[rng.random(rows) < 0.05, "issues_viewed"] = np.nan
    frame["instance"] = np.arange(rows) + seed * 1_000_000
    first_monday = date.fromisoformat(WEEKS[0])
    frame["eval_start_date"] = [str(first_monday + timedelta(days=int(d))) for d in rng.integers(0, 21, rows)]
    return frame[list(INSTANCES_MODELING_COLUMNS)]


def test_the_switch_is_a_row_count_from_the_environment(monkeypatch):
    monkeypatch.delenv(SPARK_TRAINING_MIN_ROWS_ENV, raising=False)
    assert spark_training_min_rows() == DEFAULT_SPARK_TRAINING_MIN_ROWS == 2_000_000
    assert not use_spark_training(57_700)  # the talk's window trains with pandas
    assert use_spark_training(2_000_001) and not use_spark_training(2_000_000)
    monkeypatch.setenv(SPARK_TRAINING_MIN_ROWS_ENV, "1_000")
    assert use_spark_training(1_001) and not use_spark_training(1_000)
    monkeypatch.setenv(SPARK_TRAINING_MIN_ROWS_ENV, "many")
    with pytest.raises(ValueError, match=SPARK_TRAINING_MIN_ROWS_ENV):
        use_spark_training(10)


def test_hyper_parameters_map_to_the_spark_estimator():
    mapped = spark_xgb_params(TALK_XGB_PARAMS)
    # SparkXGBClassifier sets the objective from the labels and the threads from spark.task.cpus.
    assert "objective" not in mapped and "n_jobs" not in mapped
    assert mapped == {k: v for k, v in TALK_XGB_PARAMS.items() if k not in ("objective", "n_jobs")}
    with pytest.raises(ValueError, match="binary:logistic"):
        spark_xgb_params({**TALK_XGB_PARAMS, "objective": "reg:squarederror"})


@pytest.mark.slow
def test_spark_model_is_stored_loaded_and_scored_like_the_pandas_one(spark, storage):
    frame, unseen = labelled_frame(3000, seed=1), labelled_frame(2000, seed=2)
    fitted = Preprocessor.fit(frame)

    on_spark = train_churn_model_on_spark(
        spark, frame, "2026-09-21", FAST_PARAMS, threshold_folds=5, preprocessor=fitted, num_workers=2
    )
    on_pandas = train_churn_model(frame, "2026-09-21", FAST_PARAMS, threshold_folds=None, preprocessor=fitted)

    card = on_spark.card
    assert card.threshold_rule == "max_f1_held_out" and 0 < card.decision_threshold < 1
    assert card.rows == 3000 and card.training_weeks == WEEKS
    assert card.params == FAST_PARAMS  # the pandas-path parameters: model_evaluation re-trains with them
    # The threshold was chosen on one stratified fifth of the rows, held out of a first model.
    held_out = card.metrics["max_f1_held_out"]
    assert held_out["rows"] == 600 and held_out["threshold"] == card.decision_threshold
    # Same file format, same loader, same stored preprocessor, same scoring code.
    stored_card = write_model(storage, "2026-09-21", on_spark, converter_reference(frame))
    stored = read_model(storage, "2026-09-21")
    assert stored.version == stored_card.model_version and stored.preprocessor == fitted
    assert list(stored.booster.feature_names) == list(fitted.feature_names)
    scored = score(unseen, stored.preprocessor, stored.booster, stored.threshold, stored.version)
    np.testing.assert_allclose(scored["retain_probability"], on_spark.predict_proba(unseen), rtol=0, atol=1e-6)
    assert scored["prediction_retained"].isin([0, 1]).all()
    # Close to the pandas model's quality (not equal: row sampling differs across workers).
    auc_spark = roc_auc_score(unseen["retained"], scored["retain_probability"])
    auc_pandas = roc_auc_score(unseen["retained"], on_pandas.predict_proba(unseen))
    assert auc_pandas > 0.65  # the simulated signal is learnable (the oracle is about 0.73)
    assert abs(auc_spark - auc_pandas) < 0.05
    np.testing.assert_allclose(
        scored["retain_probability"], on_pandas.predict_proba(unseen), rtol=0, atol=0.25
    )


@pytest.mark.slow
def test_churn_model_trains_on_spark_only_above_the_threshold(resources, storage, monkeypatch):
    rows = labelled_frame(1200, seed=3)
    weekly = FeatureTable("instances_modeling", list(WEEKS), rows, exclusions=pd.DataFrame())
    write_weekly_csv(storage, weekly)
    run_config = {"ops": {"churn_model": {"config": {"threshold_folds": 2, "n_estimators": 40, "n_jobs": 1}}}}

    def train() -> dict:
        result = dg.materialize(
            [preprocessor, churn_model], resources=resources, partition_key=WEEKS[-1], run_config=run_config
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node("churn_model")
        return {key: value.value for key, value in materialization.metadata.items()}

    monkeypatch.delenv(SPARK_TRAINING_MIN_ROWS_ENV, raising=False)
    below = train()
    assert below["trainer"] == "xgboost" and below["threshold_rule"] == "max_f1_out_of_fold"

    monkeypatch.setenv(SPARK_TRAINING_MIN_ROWS_ENV, "1000")
    above = train()
    assert above["trainer"] == "xgboost.spark" and above["threshold_rule"] == "max_f1_held_out"
    assert above["rows"] == below["rows"] == 1200
    # Both write the model the scoring side reads.
    model = read_model(storage, WEEKS[-1])
    assert model.version == above["model_version"] != below["model_version"]
    assert model.card.threshold_rule == "max_f1_held_out"
