"""The ML assets end to end on a small simulated data set: training window, gate, scoring."""

from __future__ import annotations

from datetime import date, datetime, timezone

import dagster as dg
import pandas as pd
import pytest

from churn_assets.assets.ml import (
    churn_model,
    model_evaluation,
    model_gate_passed,
    predictions,
    preprocessor,
    window_week_keys,
)
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import FEATURE_COLUMNS, PREDICTION_COLUMNS
from churn_assets.ml.scoring import EXPLAINED_PREDICTION_COLUMNS
from churn_assets.partitions import cohort_weeks, labelled_weeks
from churn_assets.registry import promoted_model_weeks, read_evaluation, read_model, read_predictions
from churn_assets.simulator import simulate
from churn_assets.weeks import is_labelled, parse_week

AS_OF = date(2026, 12, 3)
FAST_MODEL = {"threshold_folds": 2, "n_estimators": 60, "n_jobs": 1}
FAST_EVALUATION = {"threshold_folds": 2}


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def test_labelled_partitions_hold_only_closed_label_windows():
    now = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)
    keys = labelled_weeks.get_partition_keys(current_time=now)
    assert keys[-1] == "2026-10-19"
    assert all(is_labelled(parse_week(k), now.date()) for k in keys)
    # the scoring table reaches the week in progress
    assert cohort_weeks.get_partition_keys(current_time=now)[-1] == "2026-11-30"


def test_training_window_is_thirteen_weeks_ending_at_the_partition():
    weeks = window_week_keys("2026-10-19")
    assert len(weeks) == 13 and weeks[-1] == "2026-10-19" and weeks[0] == "2026-07-27"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, spark):
    from resources.emr_serverless import EMRServerlessFeatureJobs
    from resources.spark import spark_resource
    from resources.storage import StorageRoot

    root = tmp_path_factory.mktemp("ml") / "root"
    simulate(root, instances=3000, weeks=6, as_of=AS_OF, seed=5)
    storage = StorageRoot(root=str(root))
    resources = {
        "spark": spark_resource(),
        "storage": storage,
        "io_manager": dg.InMemoryIOManager(),
        "emr_serverless": EMRServerlessFeatureJobs(),
    }
    assert dg.materialize([instances_modeling], resources=resources, tags=range_tags("2026-09-14", "2026-10-19")).success
    assert dg.materialize([instances_w1], resources=resources, tags=range_tags("2026-09-14", "2026-11-30")).success
    return storage, resources


def train_week(resources, week: str, drop: list[str] | None = None):
    preprocessor_config = {"drop_columns": drop} if drop else {}
    return dg.materialize(
        [preprocessor, churn_model, model_evaluation, model_gate_passed],
        resources=resources,
        partition_key=week,
        run_config={
            "ops": {
                "preprocessor": {"config": preprocessor_config},
                "churn_model": {"config": FAST_MODEL},
                "model_evaluation": {"config": FAST_EVALUATION},
            }
        },
        raise_on_error=False,
    )


@pytest.mark.slow
def test_a_bad_model_is_not_promoted_and_predictions_keep_the_previous_one(simulated):
    storage, resources = simulated
    good = train_week(resources, "2026-10-12")
    assert good.success
    assert promoted_model_weeks(storage) == ["2026-10-12"]
    good_version = read_model(storage, "2026-10-12").version

    # Only the weakest feature left: the out-of-time ROC-AUC collapses.
    only_weak = [c for c in ("instance", "eval_start_date", "retained", *FEATURE_COLUMNS) if c != "issues_completed"]
    bad = train_week(resources, "2026-10-19", drop=only_weak)
    assert not bad.success  # the blocking gate failed the run
    (gate,) = [e for e in bad.get_asset_check_evaluations() if e.check_name == "model_gate_passed"]
    assert not gate.passed and "model_evaluation week=2026-10-19" in gate.description
    assert promoted_model_weeks(storage) == ["2026-10-12"]
    assert read_evaluation(storage, "2026-10-19")["gate"]["passed"] is False

    scored = dg.materialize([predictions], resources=resources, partition_key="2026-11-30")
    assert scored.success
    rows = read_predictions(storage, "2026-11-30")
    assert set(rows["model_version"]) == {good_version}
    (materialization,) = scored.asset_materializations_for_node("predictions")
    assert materialization.metadata["model_version"].value == good_version


@pytest.mark.slow
def test_model_trains_on_its_window_only_and_predictions_follow_the_contract(simulated):
    storage, resources = simulated
    assert train_week(resources, "2026-10-12").success
    model = read_model(storage, "2026-10-12")
    # instances_w1 files of later weeks exist; only labelled weeks up to the partition are used
    assert model.card.training_weeks == tuple(f"2026-{d}" for d in ("09-14", "09-21", "09-28", "10-05", "10-12"))
    evaluation = read_evaluation(storage, "2026-10-12")
    for name in ("logistic_regression", "xgboost", "random_forest", "mlp"):
        assert set(evaluation["talk_protocol"][name]) >= {"accuracy", "precision", "recall"}
    assert evaluation["out_of_time"]["train"]["weeks"]["last"] < evaluation["out_of_time"]["test"]["weeks"]["first"]
    assert {"roc_auc", "pr_auc"} <= set(evaluation["oracle"])

    assert dg.materialize([predictions], resources=resources, tags=range_tags("2026-10-26", "2026-11-02")).success
    for week in ("2026-10-26", "2026-11-02"):
        scored = read_predictions(storage, week)
        features = pd.read_csv(storage.path(f"models/instances_w1/v0/{week}.csv"))
        # The contract's columns first, in order; the explanations (issue 6) after them.
        assert list(scored.columns) == list(EXPLAINED_PREDICTION_COLUMNS)
        assert list(scored.columns[: len(PREDICTION_COLUMNS)]) == list(PREDICTION_COLUMNS)
        assert scored["instance"].tolist() == features["instance"].tolist()
        assert scored["retain_probability"].between(0, 1).all()
        assert set(scored["prediction_retained"]) <= {0, 1}
        expected = (scored["retain_probability"] >= model.threshold).astype(int)
        assert (scored["prediction_retained"] == expected).all()
