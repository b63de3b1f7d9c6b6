"""Data-quality asset checks: the pure logic (churn_assets.quality) and the Dagster wiring
(churn_assets.checks) per cohort-week partition, on materialized tables corrupted on disk."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_assets.checks import ASSET_CHECKS, INSTANCES_MODELING_CHECKS, INSTANCES_W1_CHECKS, PREDICTIONS_CHECKS
from churn_assets.contract import (
    CHURN_MODEL_DIR,
    FEATURE_COLUMNS,
    INSTANCES_MODELING_COLUMNS,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_COLUMNS,
    INSTANCES_W1_DIR,
    PREDICTION_COLUMNS,
    PREDICTIONS_DIR,
    RAW_CONVERSIONS,
    RAW_INSTANCES,
    RAW_USAGE_EVENTS,
)
from churn_assets.ml.model import ModelCard
from churn_assets.quality import (
    ERROR,
    WARN,
    QualityThresholds,
    check_binary,
    check_exclusions,
    check_feature_drift,
    check_no_nulls,
    check_non_negative_counts,
    check_one_row_per_instance,
    check_positive_rate,
    check_prediction_values,
    check_rows_match,
    check_schema,
    combine_outcomes,
    exclusion_records,
    exclusions_path,
    population_stability_index,
    week1_complete,
)
from resources.emr_serverless import EMRServerlessFeatureJobs
from resources.spark import spark_resource
from tests.rawdata import conversion, event, instance, write_raw

WEEK = "2026-09-07"


def modeling_frame(n: int = 4) -> pd.DataFrame:
    rows = []
    for i in range(n):
        row = {"instance": 100 + i, "eval_start_date": "2026-09-08", "retained": i % 2}
        row.update({c: i + k for k, c in enumerate(FEATURE_COLUMNS)})
        rows.append(row)
    return pd.DataFrame(rows)[list(INSTANCES_MODELING_COLUMNS)]


def assert_names(outcome, table: str, column: str) -> None:
    """A failure names the table, the partition and the column at fault."""
    assert not outcome.passed
    assert outcome.message.startswith(f"{table} week={WEEK}: "), outcome.message
    assert f"'{column}'" in outcome.message, outcome.message


# ============================================================================================
# pure checks


def test_schema_passes_on_the_contracts_columns_and_names_each_fault():
    frame = modeling_frame()
    assert check_schema("instances_modeling", WEEK, frame, INSTANCES_MODELING_COLUMNS).passed

    swapped = frame[["instance", "eval_start_date", "retained", "number_of_issues", "number_of_projects",
                     *FEATURE_COLUMNS[2:]]]
    outcome = check_schema("instances_modeling", WEEK, swapped, INSTANCES_MODELING_COLUMNS)
    assert_names(outcome, "instances_modeling", "number_of_issues")
    assert "position 4" in outcome.message and "'number_of_projects'" in outcome.message
    assert outcome.severity == ERROR

    outcome = check_schema("instances_modeling", WEEK, frame.drop(columns="retained"), INSTANCES_MODELING_COLUMNS)
    assert_names(outcome, "instances_modeling", "retained")
    assert "missing" in outcome.message

    outcome = check_schema("instances_w1", WEEK, frame, INSTANCES_W1_COLUMNS)
    assert_names(outcome, "instances_w1", "retained")
    assert "not in the contract" in outcome.message


def test_schema_of_predictions_is_a_prefix():
    frame = pd.DataFrame(columns=[*PREDICTION_COLUMNS, "explanation"])
    assert check_schema("predictions", WEEK, frame, PREDICTION_COLUMNS, prefix=True).passed
    assert not check_schema("predictions", WEEK, frame, PREDICTION_COLUMNS).passed
    short = pd.DataFrame(columns=list(PREDICTION_COLUMNS[:-1]))
    assert_names(check_schema("predictions", WEEK, short, PREDICTION_COLUMNS, prefix=True), "predictions", "model_version")


def test_nulls_are_counted_per_column():
    frame = modeling_frame()
    assert check_no_nulls("instances_modeling", WEEK, frame).passed
    frame = frame.astype({"mobile_usage": float})
    frame.loc[[0, 2], "mobile_usage"] = np.nan
    outcome = check_no_nulls("instances_modeling", WEEK, frame)
    assert_names(outcome, "instances_modeling", "mobile_usage")
    assert "has 2 null values" in outcome.message
    assert outcome.metadata["null_counts"] == {"mobile_usage": 2}


def test_negative_non_numeric_and_fractional_counts():
    frame = modeling_frame()
    assert check_non_negative_counts("instances_modeling", WEEK, frame).passed
    frame.loc[[0, 1, 3], "number_of_issues"] = -1
    outcome = check_non_negative_counts("instances_modeling", WEEK, frame)
    assert outcome.message == "instances_modeling week=2026-09-07: column 'number_of_issues' has 3 negative values"
    other = modeling_frame().astype({"sprint_started": object})
    other.loc[0, "sprint_started"] = "many"
    other.loc[1, "sprint_started"] = 1.5
    outcome = check_non_negative_counts("instances_w1", WEEK, other)
    assert_names(outcome, "instances_w1", "sprint_started")
    assert "1 non-numeric" in outcome.message and "1 non-integer" in outcome.message


def test_binary_label():
    frame = modeling_frame()
    assert check_binary("instances_modeling", WEEK, frame, "retained").passed
    frame.loc[1, "retained"] = 2
    assert_names(check_binary("instances_modeling", WEEK, frame, "retained"), "instances_modeling", "retained")


def test_duplicates_name_example_instances():
    frame = modeling_frame()
    assert check_one_row_per_instance("instances_w1", WEEK, frame).passed
    frame = pd.concat([frame, frame.iloc[[1, 1, 2]]], ignore_index=True)
    outcome = check_one_row_per_instance("instances_w1", WEEK, frame)
    assert_names(outcome, "instances_w1", "instance")
    assert "3 duplicated rows (2 instances)" in outcome.message and "[101, 102]" in outcome.message


def test_rows_match_the_cohorts_instances():
    frame = modeling_frame()
    assert check_rows_match("instances_modeling", WEEK, frame, {100, 101, 102, 103}, "raw_instances").passed
    outcome = check_rows_match("instances_modeling", WEEK, frame, {100, 101, 102, 103, 104}, "raw_instances")
    assert_names(outcome, "instances_modeling", "instance")
    assert "4 rows for 5 distinct instances" in outcome.message and "[104]" in outcome.message
    outcome = check_rows_match("instances_modeling", WEEK, frame, {100, 101, 102}, "raw_instances")
    assert "1 instances not in raw_instances, e.g. [103]" in outcome.message
    # a duplicated row has the right ids but too many rows
    doubled = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    assert not check_rows_match("instances_modeling", WEEK, doubled, {100, 101, 102, 103}, "raw_instances").passed


def test_positive_rate_band():
    frame = modeling_frame(10)  # 5 of 10 retained
    assert check_positive_rate("instances_modeling", WEEK, frame, 0.05, 0.60).passed
    outcome = check_positive_rate("instances_modeling", WEEK, frame, 0.05, 0.40)
    assert_names(outcome, "instances_modeling", "retained")
    assert outcome.severity == WARN and "0.500 (5 of 10)" in outcome.message
    assert not check_positive_rate("instances_modeling", WEEK, frame.assign(retained=0), 0.05, 0.6).passed
    assert check_positive_rate("instances_modeling", WEEK, frame.iloc[:0], 0.05, 0.6).passed


def test_exclusion_records_and_shares():
    frame = pd.DataFrame([{
        "cohort_week": WEEK, "instance_rows": 100, "duplicate_instance_rows": 1, "event_rows_to_day_6": 1000,
        "orphan_events": 10, "invalid_events": 0, "events_before_eval_start": 60,
        "unknown_event_type_events": 5, "duplicate_events": 3,
    }])
    records = exclusion_records("instances_w1", frame, [WEEK, "2026-09-14"])
    assert records["2026-09-14"]["event_rows_to_day_6"] == 0 and records[WEEK]["orphan_events"] == 10
    assert all(type(v) is int for k, v in records[WEEK].items() if k not in ("table", "cohort_week"))
    assert exclusions_path("instances_w1", WEEK) == f"models/quality/v0/instances_w1/{WEEK}.json"

    outcome = check_exclusions("instances_w1", WEEK, records[WEEK], max_share=0.05)
    assert_names(outcome, "instances_w1", "events_before_eval_start")
    assert "60 of 1000" in outcome.message and "6.0%" in outcome.message
    assert "orphan_events" not in outcome.message  # 1 % is under the threshold
    assert outcome.metadata["counts"]["orphan_events"] == 10 and outcome.metadata["shares"]["duplicate_events"] == 0.003
    assert check_exclusions("instances_w1", WEEK, records[WEEK], max_share=0.10).passed
    assert check_exclusions("instances_w1", "2026-09-14", records["2026-09-14"], max_share=0.05).passed


def test_thresholds_from_env():
    assert QualityThresholds.from_env({}) == QualityThresholds()
    custom = QualityThresholds.from_env({"CHURN_DQ_PSI_ERROR": "0.5", "CHURN_DQ_PSI_BINS": "5"})
    assert custom.psi_error == 0.5 and custom.psi_bins == 5
    with pytest.raises(ValueError, match="CHURN_DQ_MAX_EXCLUDED_SHARE"):
        QualityThresholds.from_env({"CHURN_DQ_MAX_EXCLUDED_SHARE": "lots"})
    with pytest.raises(ValueError, match="CHURN_DQ_PSI_WARN"):
        QualityThresholds.from_env({"CHURN_DQ_PSI_WARN": "0.3"})  # above the error level
    with pytest.raises(ValueError, match="CHURN_DQ_RETAINED_RATE_MIN"):
        QualityThresholds.from_env({"CHURN_DQ_RETAINED_RATE_MIN": "0.7"})


def test_prediction_values():
    frame = pd.DataFrame({
        "instance": [1, 2, 3],
        "prediction_retained": [1, 0, 0],
        "retain_probability": [0.9, 0.1, 0.0],
        "model_version": ["2026-08-31-abc"] * 3,
    })
    assert check_prediction_values("predictions", WEEK, frame).passed
    bad = frame.assign(retain_probability=[1.5, 0.1, -0.1])
    outcome = check_prediction_values("predictions", WEEK, bad)
    assert_names(outcome, "predictions", "retain_probability")
    assert "2 values outside [0, 1]" in outcome.message
    assert_names(check_prediction_values("predictions", WEEK, frame.assign(prediction_retained=[1, 2, 0])),
                 "predictions", "prediction_retained")
    assert_names(check_prediction_values("predictions", WEEK, frame.assign(model_version=["x", " ", None])),
                 "predictions", "model_version")


def test_combined_outcome_of_a_multi_week_run():
    ok = check_binary("instances_modeling", "2026-09-07", modeling_frame(), "retained")
    bad = check_binary("instances_modeling", "2026-09-14", modeling_frame().assign(retained=3), "retained")
    combined = combine_outcomes("instances_modeling", {"2026-09-07": ok, "2026-09-14": bad})
    assert not combined.passed and combined.severity == ERROR
    assert combined.message.startswith("instances_modeling weeks 2026-09-07..2026-09-14: 1 of 2 weeks failed")
    assert "instances_modeling week=2026-09-14: column 'retained'" in combined.message
    assert combined.metadata["failed_weeks"] == ["2026-09-14"]
    assert combine_outcomes("instances_modeling", {"2026-09-07": ok, "2026-09-21": ok}).passed


# ---- population stability index, hand-computed


def test_psi_identical_distributions_is_zero():
    values = [0, 0, 1, 2, 3, 5, 8, 13, 21, 34]
    assert population_stability_index(values, values) == 0.0
    assert population_stability_index(values, list(reversed(values)) * 3) == pytest.approx(0.0)


def test_psi_two_bins_by_hand():
    # median of [0]*5 + [1]*5 is 0.5: bins (-inf, 0.5], (0.5, inf); shares 0.5/0.5 vs 0.8/0.2
    psi = population_stability_index([0] * 5 + [1] * 5, [0] * 8 + [1] * 2, bins=2)
    assert psi == pytest.approx(0.3 * math.log(0.8 / 0.5) + 0.3 * math.log(0.5 / 0.2))
    assert psi == pytest.approx(0.41589, abs=1e-5)
    # default 10 bins over a 0/1 feature: the ties collapse to the same two bins
    assert population_stability_index([0] * 5 + [1] * 5, [0] * 8 + [1] * 2) == pytest.approx(psi)


def test_psi_heavy_ties_use_unique_quantile_edges():
    # reference 6 zeros and 1..4, 5 bins: quantiles at 0.2..0.8 are 0, 0, 0.4, 2.2 -> cut points
    # 0, 0.4, 2.2: bins (-inf,0] (0,0.4] (0.4,2.2] (2.2,inf) with shares .6 0 .2 .2
    reference = [0] * 6 + [1, 2, 3, 4]
    current = [0] * 2 + [1] * 4 + [5] * 4  # shares .2 0 .4 .4
    expected = (0.2 - 0.6) * math.log(0.2 / 0.6) + 0.0 + 0.2 * math.log(2) + 0.2 * math.log(2)
    assert population_stability_index(reference, current, bins=5) == pytest.approx(expected)


def test_psi_empty_bin_uses_epsilon():
    # reference [1,2,3,4], 2 bins: cut 2.5; current all 1: shares 1/0 vs .5/.5, the empty one -> 1e-4
    eps = 1e-4
    expected = (1 - 0.5) * math.log(1 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert population_stability_index([1, 2, 3, 4], [1, 1, 1, 1], bins=2) == pytest.approx(expected)
    # an all-zero reference still separates "0" from "> 0"
    assert population_stability_index([0] * 10, [0] * 10) == 0.0
    assert population_stability_index([0] * 10, [3] * 10) == pytest.approx(2 * (1 - eps) * math.log(1 / eps))


def test_psi_ignores_nulls_and_rejects_empty_input():
    assert population_stability_index([0, 1, np.nan, 1], [0, 1, 1, None]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="reference"):
        population_stability_index([], [1, 2])


def drift_frames(shift: float = 0.0, n: int = 200, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame({c: rng.poisson(3, n) for c in FEATURE_COLUMNS})
    current = reference.copy()
    current["number_of_issues"] = current["number_of_issues"] * (1 + shift) + shift * 10
    return reference, current


def test_feature_drift_levels():
    reference, current = drift_frames()
    outcome = check_feature_drift("instances_w1", WEEK, reference, current, reference_name="model m")
    assert outcome.passed and outcome.metadata["max_psi"] == 0.0

    reference, current = drift_frames(shift=1.0)
    outcome = check_feature_drift("instances_w1", WEEK, reference, current, reference_name="model m")
    assert_names(outcome, "instances_w1", "number_of_issues")
    assert outcome.severity == ERROR and "against model m" in outcome.message
    assert outcome.metadata["drifted"] == ["number_of_issues"]

    # between warn and error: WARN; with a custom error level the same drift is only a warning
    psi = outcome.metadata["max_psi"]
    outcome = check_feature_drift("instances_w1", WEEK, reference, current, reference_name="m", warn=0.1, error=psi + 1)
    assert not outcome.passed and outcome.severity == WARN
    # partial week 1, or too few rows: at most a warning
    outcome = check_feature_drift("instances_w1", WEEK, reference, current, reference_name="m", complete=False)
    assert outcome.severity == WARN and "still in progress" in outcome.message
    outcome = check_feature_drift("instances_w1", WEEK, reference, current, reference_name="m", min_rows=1000)
    assert outcome.severity == WARN and "only 200 rows" in outcome.message
    # nothing to compare
    assert check_feature_drift("instances_w1", WEEK, reference, current.iloc[:0], reference_name="m").passed


def test_week1_is_complete_the_day_after_the_sunday_starters_day_6():
    monday = date.fromisoformat(WEEK)
    assert not week1_complete(WEEK, monday + timedelta(days=12))  # Sunday 09-13 + 6 = 09-19
    assert week1_complete(WEEK, monday + timedelta(days=13))


# ============================================================================================
# Dagster wiring


def evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def run_checks(asset, checks, week: str, resources, selection=None):
    """A checks-only run of one partition of `asset`. `partition_key=` refuses a selection without
    an asset in it ("no PartitionsDefinition shared by all the provided assets"); the tag works."""
    return dg.materialize(
        [asset, *checks],
        resources=resources,
        selection=selection or dg.AssetSelection.checks_for_assets(asset),
        tags={"dagster/partition": week},
        raise_on_error=False,
    )


def check_named(checks, name):
    return next(c for c in checks if next(iter(c.check_specs)).name == name)


def test_every_check_has_its_assets_partitions_and_the_agreed_blocking():
    from churn_assets.assets.ml import predictions
    from churn_assets.assets.tables import instances_modeling, instances_w1

    partitions = {"instances_modeling": instances_modeling.partitions_def,
                  "instances_w1": instances_w1.partitions_def, "predictions": predictions.partitions_def}
    specs = {spec.key.to_user_string(): spec for c in ASSET_CHECKS for spec in c.check_specs}
    for key, spec in specs.items():
        assert spec.partitions_def == partitions[spec.asset_key.to_user_string()], key
    non_blocking = {k for k, s in specs.items() if not s.blocking}
    assert non_blocking == {
        "instances_modeling:retained_rate",
        "instances_modeling:exclusions",
        "instances_w1:exclusions",
        "instances_w1:feature_drift",
    }
    assert {"instances_modeling:rows_match_raw_instances", "instances_w1:non_negative_counts",
            "predictions:rows_match_instances_w1", "predictions:prediction_values"} <= set(specs)


def test_definitions_carry_the_checks():
    from churn_assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().asset_check_keys}
    assert {s.key.to_user_string() for c in ASSET_CHECKS for s in c.check_specs} <= keys


def write_week_csv(storage, folder: str, week: str, frame: pd.DataFrame) -> None:
    storage.write_csv(f"{folder}/{week}.csv", frame)


def test_a_failed_blocking_check_stops_the_assets_downstream(storage):
    """A stand-in for instances_modeling writes its partition; the real checks judge the file."""
    from churn_assets.partitions import labelled_weeks

    write_raw(storage.base, RAW_INSTANCES, [instance(100 + i, date(2026, 9, 8)) for i in range(4)])
    table = {"frame": modeling_frame()}

    @dg.asset(name="instances_modeling", partitions_def=labelled_weeks)
    def stand_in(context) -> None:
        write_week_csv(storage, INSTANCES_MODELING_DIR, context.partition_key, table["frame"])

    @dg.asset(deps=["instances_modeling"], partitions_def=labelled_weeks)
    def downstream() -> None:
        return None

    def run():
        return dg.materialize([stand_in, downstream, *INSTANCES_MODELING_CHECKS], resources={"storage": storage},
                              partition_key=WEEK, raise_on_error=False)

    result = run()
    assert result.success
    assert result.asset_materializations_for_node("downstream")
    assert all(e.passed for name, e in evaluations(result).items() if name != "exclusions")

    bad = modeling_frame()
    bad.loc[2, "number_of_invites"] = -4
    table["frame"] = bad
    result = run()
    assert not result.success
    assert not result.asset_materializations_for_node("downstream")
    failed = {n: e for n, e in evaluations(result).items() if not e.passed}
    assert set(failed) == {"non_negative_counts", "exclusions"}  # no counts were persisted by the stand-in
    assert failed["non_negative_counts"].severity == dg.AssetCheckSeverity.ERROR
    assert failed["non_negative_counts"].partition == WEEK
    assert failed["non_negative_counts"].description == (
        "instances_modeling week=2026-09-07: column 'number_of_invites' has 1 negative values"
    )
    assert failed["exclusions"].severity == dg.AssetCheckSeverity.WARN


# ---- predictions and drift: written by hand, no Spark


def w1_frame(ids, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"instance": ids, "eval_start_date": "2026-09-08"})
    for column in FEATURE_COLUMNS:
        frame[column] = rng.poisson(2, len(ids))
    return frame[list(INSTANCES_W1_COLUMNS)]


def prediction_frame(w1: pd.DataFrame) -> pd.DataFrame:
    frame = w1.copy()
    frame["prediction_retained"] = [i % 2 for i in range(len(frame))]
    frame["retain_probability"] = [0.7 if i % 2 else 0.2 for i in range(len(frame))]
    frame["model_version"] = "2026-08-31-0123abcd"
    return frame[list(PREDICTION_COLUMNS)]


PREDICTION_WEEKS = ("2026-09-07", "2026-09-14")


@pytest.fixture()
def scored(storage):
    for n, week in enumerate(PREDICTION_WEEKS):
        w1 = w1_frame([1000 * (n + 1) + i for i in range(6)], seed=n)
        write_week_csv(storage, INSTANCES_W1_DIR, week, w1)
        write_week_csv(storage, PREDICTIONS_DIR, week, prediction_frame(w1))
    return storage


def corrupt_probability(frame):
    frame.loc[1, "retain_probability"] = 1.5
    return frame


def corrupt_decision(frame):
    frame.loc[0, "prediction_retained"] = 2
    return frame


def corrupt_version(frame):
    frame.loc[3, "model_version"] = ""
    return frame


def drop_prediction(frame):
    return frame.drop(index=2)


def drop_model_version(frame):
    return frame.drop(columns="model_version")


@pytest.mark.parametrize(
    ("corrupt", "failing", "column"),
    [
        pytest.param(corrupt_probability, {"prediction_values"}, "retain_probability", id="probability"),
        pytest.param(corrupt_decision, {"prediction_values"}, "prediction_retained", id="decision"),
        pytest.param(corrupt_version, {"prediction_values", "no_nulls"}, "model_version", id="empty-version"),
        pytest.param(drop_prediction, {"rows_match_instances_w1"}, "instance", id="missing-row"),
        pytest.param(drop_model_version, {"contract_schema", "prediction_values"}, "model_version",
                     id="missing-column"),
    ],
)
def test_prediction_checks_fail_on_the_corrupted_week_only(scored, corrupt, failing, column):
    from churn_assets.assets.ml import predictions

    week_a, week_b = PREDICTION_WEEKS
    relative = f"{PREDICTIONS_DIR}/{week_a}.csv"
    scored.write_csv(relative, corrupt(scored.read_csv(relative)))
    resources = {"storage": scored}

    result = run_checks(predictions, PREDICTIONS_CHECKS, week_a, resources)
    assert not result.success  # blocking ERROR checks fail the run
    failed = {n: e for n, e in evaluations(result).items() if not e.passed}
    assert set(failed) == failing
    for evaluation in failed.values():
        assert evaluation.partition == week_a
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.description.startswith(f"predictions week={week_a}: ")
    assert any(f"'{column}'" in e.description for e in failed.values())

    other = run_checks(predictions, PREDICTIONS_CHECKS, week_b, resources)
    assert other.success
    assert len(evaluations(other)) == len(PREDICTIONS_CHECKS)
    assert all(e.passed and e.partition == week_b for e in evaluations(other).values())


def test_prediction_checks_accept_extra_trailing_columns(scored):
    from churn_assets.assets.ml import predictions

    relative = f"{PREDICTIONS_DIR}/{PREDICTION_WEEKS[0]}.csv"
    scored.write_csv(relative, scored.read_csv(relative).assign(explanation="feature x"))
    result = run_checks(predictions, PREDICTIONS_CHECKS, PREDICTION_WEEKS[0], {"storage": scored})
    assert result.success and all(e.passed for e in evaluations(result).values())


REFERENCE_WEEK = "2026-08-31"


def write_model_card(storage, week: str, training_weeks: tuple[str, ...], promoted: bool = True) -> None:
    card = ModelCard(
        model_version=f"{week}-0123abcd",
        training_weeks=training_weeks,
        rows=200,
        positive_rate=0.3,
        feature_names=("number_of_issues",),
        params={},
        decision_threshold=0.5,
        threshold_rule="max_f1_out_of_fold",
    )
    storage.write_text(f"{CHURN_MODEL_DIR}/{week}/card.json", card.to_json())
    if promoted:
        storage.write_text(f"{CHURN_MODEL_DIR}/{week}/promotion.json", json.dumps({"passed": True}))


def test_feature_drift_against_the_scoring_models_training_rows(storage):
    from churn_assets.assets.tables import instances_w1

    reference = w1_frame(list(range(200)), seed=3)
    reference.insert(2, "retained", [i % 3 == 0 for i in range(200)])
    write_week_csv(storage, INSTANCES_MODELING_DIR, REFERENCE_WEEK, reference.astype({"retained": int}))
    same = reference.drop(columns="retained").assign(instance=lambda f: f["instance"] + 10_000)
    shifted = same.assign(instance=lambda f: f["instance"] + 10_000,
                          w1_agg_active_users=lambda f: f["w1_agg_active_users"] * 3 + 4)
    write_week_csv(storage, INSTANCES_W1_DIR, REFERENCE_WEEK, same)
    write_week_csv(storage, INSTANCES_W1_DIR, "2026-09-07", same)
    write_week_csv(storage, INSTANCES_W1_DIR, "2026-09-14", shifted)
    drift = check_named(INSTANCES_W1_CHECKS, "feature_drift")
    # lazy: no JVM starts
    resources = {"storage": storage, "spark": spark_resource(), "emr_serverless": EMRServerlessFeatureJobs()}

    def drift_of(week):
        result = run_checks(instances_w1, INSTANCES_W1_CHECKS, week, resources, selection=dg.AssetSelection.checks(drift))
        assert result.success  # non-blocking, even at ERROR severity
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.partition == week
        return evaluation

    no_model = drift_of("2026-09-07")
    assert no_model.passed and "no promoted churn_model" in no_model.description

    write_model_card(storage, REFERENCE_WEEK, (REFERENCE_WEEK,))
    unchanged = drift_of("2026-09-07")
    assert unchanged.passed and unchanged.metadata["max_psi"].value == 0.0
    assert f"model {REFERENCE_WEEK}-0123abcd training weeks" in unchanged.description

    drifted = drift_of("2026-09-14")
    assert not drifted.passed and drifted.severity == dg.AssetCheckSeverity.ERROR
    assert drifted.description.startswith("instances_w1 week=2026-09-14: column 'w1_agg_active_users' has PSI")
    assert drifted.metadata["thresholds"].value["psi_error"] == 0.25

    # the model of its own week never scores it: no model older than the reference week
    assert drift_of(REFERENCE_WEEK).passed
    # an unpromoted model does not score, so it is no reference either
    storage.delete(f"{CHURN_MODEL_DIR}/{REFERENCE_WEEK}/promotion.json")
    assert "no promoted" in drift_of("2026-09-14").description


# ============================================================================================
# end to end: Spark materializes the feature tables of three cohort weeks once per module

WEEK_A, WEEK_B, WEEK_C = "2026-09-07", "2026-09-14", "2026-09-21"
COHORTS = {WEEK_A: 1000, WEEK_B: 2000, WEEK_C: 3000}
EARLY_EVENTS_C = 10


def build_raw(root) -> None:
    instances, events, conversions = [], [], []
    for week, base in COHORTS.items():
        monday = date.fromisoformat(week)
        for k in range(1, 11):
            i = base + k
            start = monday + timedelta(days=k % 7)
            instances.append(instance(i, start))
            for d in range(4):
                day = start + timedelta(days=d)
                events += [
                    event(i, i * 10 + 1, day, "issue_created", 1 + k % 3),
                    event(i, i * 10 + 2, day, "issue_viewed", 2, platform="mobile"),
                    event(i, i * 10 + 1, day, "issue_updated", 1),
                ]
            if k <= (3 if week == WEEK_A else 2):
                conversions.append(conversion(i, start + timedelta(days=3)))
            if week == WEEK_C and k <= EARLY_EVENTS_C:
                events.append(event(i, i * 10 + 1, start - timedelta(days=2), "issue_created", 1))
    events.append(event(COHORTS[WEEK_A] + 1, 1, date(2026, 9, 9), "page_loaded", 3))  # 1 unknown type of 121
    write_raw(root, RAW_INSTANCES, instances)
    write_raw(root, RAW_USAGE_EVENTS, events)
    write_raw(root, RAW_CONVERSIONS, conversions)


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


@pytest.fixture(scope="module")
def materialized(tmp_path_factory, spark):
    """instances_modeling for weeks A and B (one partition per run, with its checks) and
    instances_w1 for A..C in one single-run backfill: three Spark runs for the module."""
    from churn_assets.assets.tables import instances_modeling, instances_w1
    from resources.spark import spark_resource
    from resources.storage import StorageRoot

    base = tmp_path_factory.mktemp("checks")
    storage = StorageRoot(root=str(base / "root"))
    build_raw(storage.base)
    resources = {
        "spark": spark_resource(),
        "storage": storage,
        "io_manager": dg.FilesystemIOManager(base_dir=str(base / "io")),
        "emr_serverless": EMRServerlessFeatureJobs(),
    }
    results = {
        ("instances_modeling", week): dg.materialize(
            [instances_modeling, *INSTANCES_MODELING_CHECKS], resources=resources, partition_key=week,
            raise_on_error=False,
        )
        for week in (WEEK_A, WEEK_B)
    }
    results[("instances_w1", "range")] = dg.materialize(
        [instances_w1, *INSTANCES_W1_CHECKS], resources=resources, tags=range_tags(WEEK_A, WEEK_C),
        raise_on_error=False,
    )
    return {"storage": storage, "resources": resources, "results": results}


@pytest.mark.slow
def test_checks_pass_per_partition_on_the_materialized_tables(materialized):
    for week in (WEEK_A, WEEK_B):
        result = materialized["results"][("instances_modeling", week)]
        assert result.success
        found = evaluations(result)
        assert set(found) == {next(iter(c.check_specs)).name for c in INSTANCES_MODELING_CHECKS}
        for name, evaluation in found.items():
            assert evaluation.passed, evaluation.description
            assert evaluation.partition == week
            assert evaluation.description.startswith(f"instances_modeling week={week}: ")
    a = evaluations(materialized["results"][("instances_modeling", WEEK_A)])
    assert a["exclusions"].metadata["counts"].value["unknown_event_type_events"] == 1
    assert a["retained_rate"].metadata["positive_rate"].value == 0.3
    assert a["rows_match_raw_instances"].metadata["expected_instances"].value == 10


@pytest.mark.slow
def test_exclusion_counts_are_persisted_per_table_and_week(materialized):
    storage = materialized["storage"]
    for table, weeks in (("instances_modeling", (WEEK_A, WEEK_B)), ("instances_w1", (WEEK_A, WEEK_B, WEEK_C))):
        for week in weeks:
            record = json.loads(storage.read_text(exclusions_path(table, week)))
            assert record["table"] == table and record["cohort_week"] == week
            assert record["instance_rows"] == 10
            assert record["unknown_event_type_events"] == (1 if week == WEEK_A else 0)
            assert record["events_before_eval_start"] == (EARLY_EVENTS_C if week == WEEK_C else 0)
            assert record["event_rows_to_day_6"] == 120 + (week == WEEK_A) + (EARLY_EVENTS_C if week == WEEK_C else 0)


@pytest.mark.slow
def test_a_single_run_backfill_reports_one_result_naming_the_failing_week(materialized):
    result = materialized["results"][("instances_w1", "range")]
    assert result.success  # the failing check is non-blocking
    found = evaluations(result)
    assert all(e.partition is None for e in found.values())  # a range run has no partition key
    failed = {n for n, e in found.items() if not e.passed}
    assert failed == {"exclusions"}
    message = found["exclusions"].description
    assert message.startswith(f"instances_w1 weeks {WEEK_A}..{WEEK_C}: 1 of 3 weeks failed")
    assert f"instances_w1 week={WEEK_C}: column 'events_before_eval_start' excluded 10 of 130" in message


@pytest.mark.slow
def test_exclusions_check_per_partition_and_its_threshold_from_env(materialized, monkeypatch):
    from churn_assets.assets.tables import instances_w1

    resources = materialized["resources"]
    noisy = evaluations(run_checks(instances_w1, INSTANCES_W1_CHECKS, WEEK_C, resources))
    assert {n for n, e in noisy.items() if not e.passed} == {"exclusions"}
    assert noisy["exclusions"].severity == dg.AssetCheckSeverity.WARN
    assert noisy["exclusions"].description == (
        f"instances_w1 week={WEEK_C}: column 'events_before_eval_start' excluded 10 of 130 "
        "event rows to day 6 (7.7%), above 5.0%"
    )
    clean = evaluations(run_checks(instances_w1, INSTANCES_W1_CHECKS, WEEK_A, resources))
    assert all(e.passed for e in clean.values())

    monkeypatch.setenv("CHURN_DQ_MAX_EXCLUDED_SHARE", "0.10")
    relaxed = evaluations(run_checks(instances_w1, INSTANCES_W1_CHECKS, WEEK_C, resources))
    assert relaxed["exclusions"].passed
    assert relaxed["exclusions"].metadata["thresholds"].value["max_excluded_share"] == 0.10


@pytest.fixture()
def restore_week_a(materialized):
    storage = materialized["storage"]
    files = [f"{INSTANCES_MODELING_DIR}/{WEEK_A}.csv", f"{INSTANCES_W1_DIR}/{WEEK_A}.csv"]
    saved = {f: storage.read_bytes(f) for f in files}
    yield materialized
    for relative, data in saved.items():
        storage.write_bytes(relative, data)


def negative_issues(frame):
    frame.loc[[0, 4], "number_of_issues"] = -3
    return frame


def null_active_users(frame):
    frame["w1_active_users"] = frame["w1_active_users"].astype(float)
    frame.loc[5, "w1_active_users"] = np.nan
    return frame


def duplicate_instance(frame):
    return pd.concat([frame, frame.iloc[[6]]], ignore_index=True)


def swap_columns(frame):
    columns = list(frame.columns)
    i, j = columns.index("number_of_projects"), columns.index("number_of_issues")
    columns[i], columns[j] = columns[j], columns[i]
    return frame[columns]


def drop_first_row(frame):
    return frame.iloc[1:]


def extra_instance(frame):
    extra = frame.iloc[[0]].assign(instance=9999)
    return pd.concat([frame, extra], ignore_index=True)


def label_of_two(frame):
    frame.loc[frame["retained"] == 0, "retained"] = [2] + [0] * (int((frame["retained"] == 0).sum()) - 1)
    return frame


@pytest.mark.slow
@pytest.mark.parametrize(
    ("table", "corrupt", "failing", "needle"),
    [
        pytest.param("instances_modeling", negative_issues, {"non_negative_counts"},
                     "column 'number_of_issues' has 2 negative values", id="negative-count"),
        pytest.param("instances_modeling", null_active_users, {"no_nulls"},
                     "column 'w1_active_users' has 1 null values", id="null"),
        pytest.param("instances_modeling", duplicate_instance, {"one_row_per_instance", "rows_match_raw_instances"},
                     "column 'instance' has 1 duplicated rows (1 instances), e.g. instances [1010]", id="duplicate"),
        pytest.param("instances_modeling", swap_columns, {"contract_schema"},
                     "column 'number_of_issues' is at position 4, where the contract puts 'number_of_projects'",
                     id="column-order"),
        pytest.param("instances_modeling", drop_first_row, {"rows_match_raw_instances"},
                     "column 'instance' has 9 rows for 10 distinct instances in raw_instances week=2026-09-07; "
                     "1 instances missing from the table, e.g. [1007]", id="missing-row"),
        pytest.param("instances_modeling", label_of_two, {"retained_is_binary"},
                     "column 'retained' has 1 values outside {0, 1}", id="label"),
        pytest.param("instances_w1", extra_instance, {"rows_match_raw_instances"},
                     "1 instances not in raw_instances, e.g. [9999]", id="w1-extra-row"),
    ],
)
def test_a_corrupted_partition_fails_its_checks_while_the_other_passes(restore_week_a, table, corrupt, failing, needle):
    from churn_assets.assets.tables import instances_modeling, instances_w1

    storage, resources = restore_week_a["storage"], restore_week_a["resources"]
    asset, checks = {
        "instances_modeling": (instances_modeling, INSTANCES_MODELING_CHECKS),
        "instances_w1": (instances_w1, INSTANCES_W1_CHECKS),
    }[table]
    folder = {"instances_modeling": INSTANCES_MODELING_DIR, "instances_w1": INSTANCES_W1_DIR}[table]
    relative = f"{folder}/{WEEK_A}.csv"
    storage.write_csv(relative, corrupt(storage.read_csv(relative, dtype={"eval_start_date": str})))

    result = run_checks(asset, checks, WEEK_A, resources)
    assert not result.success  # a blocking check failed with ERROR
    found = evaluations(result)
    failed = {n: e for n, e in found.items() if not e.passed}
    assert set(failed) == failing
    for evaluation in failed.values():
        assert evaluation.partition == WEEK_A
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.description.startswith(f"{table} week={WEEK_A}: ")
    assert any(needle in e.description for e in failed.values()), [e.description for e in failed.values()]

    other = run_checks(asset, checks, WEEK_B, resources)
    assert other.success
    assert all(e.passed and e.partition == WEEK_B for e in evaluations(other).values())
