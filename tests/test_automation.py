"""Cadence, gating and freshness: the automation conditions evaluated tick by tick.

Small standalone Definitions with the real assets and the real conditions (nothing runs): each
tick is `dg.evaluate_automation_conditions` at a chosen time, and materializations or check results
are reported to the instance in between, as runs would record them.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from churn_assets import automation
from churn_assets.assets.ml import churn_model, model_evaluation, predictions, preprocessor
from churn_assets.assets.raw import RAW_ASSETS
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.partitions import cohort_weeks, labelled_weeks
from churn_assets.settings import SETTINGS
from churn_assets.weeks import latest_labelled_week, week_key
from resources.emr_serverless import EMRServerlessFeatureJobs
from resources.spark import spark_resource
from resources.storage import StorageRoot

ASSETS = ("instances_modeling", "instances_w1", "preprocessor", "churn_model", "model_evaluation", "predictions")
RETRAIN_DOWNSTREAM = ("preprocessor", "churn_model", "model_evaluation")
DEADLINE_CHECK = dg.AssetCheckKey(dg.AssetKey("predictions"), "current_week_deadline")


# Blocking checks like the real data-quality ones (churn_assets.checks): defined, never executed.
@dg.asset_check(asset=instances_modeling, name="rows_valid", blocking=True, partitions_def=labelled_weeks)
def modeling_rows_valid() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=instances_w1, name="rows_valid", blocking=True, partitions_def=cohort_weeks)
def w1_rows_valid() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=churn_model, name="artefact_complete", blocking=True, partitions_def=labelled_weeks)
def model_artefact_complete() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    return dg.Definitions(
        assets=automation.with_automation(
            [*RAW_ASSETS, instances_modeling, instances_w1, preprocessor, churn_model, model_evaluation, predictions]
        ),
        asset_checks=[modeling_rows_valid, w1_rows_valid, model_artefact_complete, *automation.ASSET_CHECKS],
        resources={
            "spark": spark_resource(),  # lazy: no JVM unless an asset runs, and none does here
            "storage": StorageRoot(root=str(tmp_path_factory.mktemp("root"))),
            "io_manager": dg.InMemoryIOManager(),
            "emr_serverless": EMRServerlessFeatureJobs(),
        },
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class Ticks:
    """Successive automation ticks against one instance, the cursor carried over."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor, self.result = defs, instance, None, None

    def tick(self, when: str) -> dict[str, set[str]]:
        self.result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, evaluation_time=at(when), cursor=self.cursor
        )
        self.cursor = self.result.cursor
        requested = {name: set(self.result.get_requested_partitions(dg.AssetKey(name))) for name in ASSETS}
        return {name: keys for name, keys in requested.items() if keys}

    def checks_requested(self) -> set[dg.AssetCheckKey]:
        return {r.key for r in self.result.results if isinstance(r.key, dg.AssetCheckKey) and r.true_subset.size}


def _report(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType, data) -> None:
    from dagster._core.events import DagsterEvent

    instance.report_dagster_event(
        DagsterEvent(event_type_value=event_type.value, event_specific_data=data, job_name="__test__"), run_id=run_id
    )


def record_materialization(instance: dg.DagsterInstance, asset: str, week: str, run_id: str | None = None) -> None:
    """A materialization of `week`, as a run (its own run id) records it."""
    from dagster._core.events import StepMaterializationData

    materialization = dg.AssetMaterialization(asset_key=asset, partition=week)
    _report(instance, run_id or make_new_run_id(), dg.DagsterEventType.ASSET_MATERIALIZATION,
            StepMaterializationData(materialization))


def record_check(instance: dg.DagsterInstance, asset: str, check: str, week: str, passed: bool) -> None:
    """A blocking check's result for the latest materialization of `week`, in the run that made it.

    (Runless check results would do for one result per partition only: the instance keeps one
    check execution per asset, check, run id and partition, and runless events share run id "".)
    """
    key = dg.AssetKey(asset)
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[week]), limit=1)
    record = latest.records[0]
    evaluation = dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=check,
        passed=passed,
        partition=week,
        blocking=True,
        severity=dg.AssetCheckSeverity.ERROR,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        ),
    )
    _report(instance, record.run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION, evaluation)


def newest_labelled(day: str) -> str:
    return week_key(latest_labelled_week(date.fromisoformat(day), SETTINGS.label_window_days))


# --- weekly retrain -----------------------------------------------------------------------------


def test_weekly_retrain_requests_the_newest_labelled_week_on_monday_morning(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-14T23:00")  # Sunday night: first tick, nothing has a previous tick yet
        assert "instances_modeling" not in ticks.tick("2026-06-15T05:59")  # Monday, before 06:00
        requested = ticks.tick("2026-06-15T06:05")
        assert requested["instances_modeling"] == {newest_labelled("2026-06-15")} == {"2026-05-04"}
        # The chain waits for the run and its checks: nothing downstream in the same tick.
        assert not set(requested) & set(RETRAIN_DOWNSTREAM)
        assert "instances_modeling" not in ticks.tick("2026-06-15T06:06")  # requested once


def test_weekly_retrain_requests_nothing_on_a_wednesday(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-16T12:00")  # Tuesday
        for when in ("2026-06-17T05:05", "2026-06-17T06:05", "2026-06-17T12:00"):  # Wednesday
            requested = ticks.tick(when)
            assert not set(requested) & {"instances_modeling", *RETRAIN_DOWNSTREAM}, when


# --- daily scoring --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "weeks"),
    [
        # Wednesday: the week in progress (2026-06-15) and the week before, whose Sunday starters
        # are still in their week 1.
        ("2026-06-17T04:00", "2026-06-17T05:05", {"2026-06-08", "2026-06-15"}),
        # Monday: the new week's partition (since 00:00) and last week, now complete.
        ("2026-06-22T04:00", "2026-06-22T05:05", {"2026-06-15", "2026-06-22"}),
    ],
)
def test_daily_scoring_refreshes_the_week_in_progress_and_the_week_before(defs, before, after, weeks):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        assert ticks.tick(before) == {}
        requested = ticks.tick(after)
        assert requested["instances_w1"] == weeks
        # predictions joins the same tick (so the same run or backfill) despite churn_model's newest
        # labelled week having no model yet: predictions uses the last promoted model itself.
        assert requested["predictions"] == weeks
        assert weeks == set(cohort_weeks.get_partition_keys(current_time=at(after))[-2:])


def test_daily_scoring_runs_once_a_day(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-17T04:00")
        assert "instances_w1" in ticks.tick("2026-06-17T05:05")
        assert ticks.tick("2026-06-17T05:06") == {}
        assert ticks.tick("2026-06-17T23:00") == {}
        assert ticks.tick("2026-06-18T05:01")["instances_w1"] == {"2026-06-08", "2026-06-15"}


# --- blocking checks gate the retrain chain ---------------------------------------------------------


def _materialize_training_window(instance: dg.DagsterInstance, newest: str, failed: str | None) -> list[str]:
    weeks = [k for k in labelled_weeks.get_partition_keys(current_time=at("2026-06-17T12:00")) if k <= newest][-13:]
    run_id = make_new_run_id()  # one run for the window: each run id is a SQLite file of its own
    for week in weeks:
        record_materialization(instance, "instances_modeling", week, run_id=run_id)
        record_check(instance, "instances_modeling", "rows_valid", week, passed=week != failed)
    return weeks


def test_retrain_chain_follows_instances_modeling_when_its_blocking_checks_passed(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-17T12:00")
        newest = newest_labelled("2026-06-17")
        _materialize_training_window(instance, newest, failed=None)
        requested = ticks.tick("2026-06-17T12:01")
        # Only the newest labelled week: the built-ins consider the latest time partition only.
        assert requested["preprocessor"] == requested["churn_model"] == {newest}
        # model_evaluation waits for churn_model's own blocking check, which runs with churn_model.
        assert "model_evaluation" not in requested
        record_materialization(instance, "churn_model", newest)
        record_check(instance, "churn_model", "artefact_complete", newest, passed=True)
        assert ticks.tick("2026-06-17T12:02")["model_evaluation"] == {newest}


@pytest.mark.parametrize("failed_week", ["newest", "older"])
def test_failed_blocking_check_holds_the_retrain_chain_back(defs, failed_week):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-17T12:00")
        newest = newest_labelled("2026-06-17")
        weeks = [k for k in labelled_weeks.get_partition_keys(current_time=at("2026-06-17T12:00")) if k <= newest][-13:]
        # "older": a week inside the 13-week training window. all_deps_blocking_checks_passed()
        # alone would let this one through (it holds when ANY mapped parent partition passed).
        failed = newest if failed_week == "newest" else weeks[5]
        _materialize_training_window(instance, newest, failed=failed)
        requested = ticks.tick("2026-06-17T12:01")
        assert not set(requested) & set(RETRAIN_DOWNSTREAM), requested
        # Fixing the week (re-run, check passes) releases the chain.
        record_materialization(instance, "instances_modeling", failed)
        record_check(instance, "instances_modeling", "rows_valid", failed, passed=True)
        assert ticks.tick("2026-06-17T12:02")["preprocessor"] == {newest}


def test_failed_blocking_check_of_instances_w1_holds_predictions_back(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-17T12:00")
        week = cohort_weeks.get_partition_keys(current_time=at("2026-06-17T12:00"))[-1]
        record_materialization(instance, "instances_w1", week)
        record_check(instance, "instances_w1", "rows_valid", week, passed=False)
        assert "predictions" not in ticks.tick("2026-06-17T12:01")
        record_materialization(instance, "instances_w1", week)
        record_check(instance, "instances_w1", "rows_valid", week, passed=True)
        assert ticks.tick("2026-06-17T12:02")["predictions"] == {week}


def test_failed_check_on_the_model_does_not_stop_scoring(defs):
    """predictions picks the last promoted model itself: a bad new model must not stop scoring."""
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-17T12:00")
        newest = newest_labelled("2026-06-17")
        record_materialization(instance, "churn_model", newest)
        record_check(instance, "churn_model", "artefact_complete", newest, passed=False)
        week = cohort_weeks.get_partition_keys(current_time=at("2026-06-17T12:00"))[-1]
        record_materialization(instance, "instances_w1", week)
        record_check(instance, "instances_w1", "rows_valid", week, passed=True)
        assert week in ticks.tick("2026-06-17T12:01")["predictions"]


# --- freshness -----------------------------------------------------------------------------------


def report_freshness(instance: dg.DagsterInstance, asset: str, state: FreshnessState) -> None:
    """What the freshness daemon of `dagster dev` records when a FreshnessPolicy changes state."""
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=dg.AssetKey(asset),
            new_state=state,
            previous_state=FreshnessState.PASS,
            state_change_timestamp=at("2026-06-17T12:00").timestamp(),
        )
    )


def test_freshness_failure_reruns_only_the_latest_partition(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        assert ticks.tick("2026-06-17T12:00") == {}  # between cron ticks: nothing due
        report_freshness(instance, "instances_w1", FreshnessState.FAIL)
        report_freshness(instance, "churn_model", FreshnessState.FAIL)
        requested = ticks.tick("2026-06-17T12:01")
        now = at("2026-06-17T12:01")
        assert len(cohort_weeks.get_partition_keys(current_time=now)) > 20  # a backfill would be large
        assert requested["instances_w1"] == {cohort_weeks.get_partition_keys(current_time=now)[-1]}
        assert requested["churn_model"] == {labelled_weeks.get_partition_keys(current_time=now)[-1]}
        assert requested["predictions"] == requested["instances_w1"]  # eager after its parent
        assert ticks.tick("2026-06-17T12:02") == {}  # once per failure, not on every tick


def test_freshness_policies_and_conditions_are_attached(defs):
    graph = defs.resolve_asset_graph()
    windows = {
        name: graph.get(dg.AssetKey(name)).freshness_policy.fail_window.to_timedelta()
        for name in ("instances_w1", "predictions", "instances_modeling", "churn_model", "model_evaluation")
    }
    assert {name: window.total_seconds() / 3600 for name, window in windows.items()} == {
        "instances_w1": 26,
        "predictions": 26,
        "instances_modeling": 192,
        "churn_model": 192,
        "model_evaluation": 192,
    }
    for name in ASSETS:
        assert graph.get(dg.AssetKey(name)).automation_condition is not None, name
    for spec in RAW_ASSETS:
        assert graph.get(spec.key).automation_condition is None


# --- the partition-aware deadline: this week's predictions by Monday 09:00 UTC ------------------


@pytest.mark.parametrize(
    ("now", "deadline", "week"),
    [
        ("2026-06-22T08:59", "2026-06-15T09:00", "2026-06-15"),
        ("2026-06-22T09:00", "2026-06-22T09:00", "2026-06-22"),
        ("2026-06-28T23:59", "2026-06-22T09:00", "2026-06-22"),
    ],
)
def test_scoring_deadline(now, deadline, week):
    assert automation.scoring_deadline(at(now)) == (at(deadline), week)


def test_deadline_check_names_the_missing_partition_then_passes(tmp_path):
    with dg.instance_for_test() as instance:
        missing = automation.deadline_result(instance, at("2026-06-22T09:05"))
        assert not missing.passed
        assert "predictions week=2026-06-22" in missing.description
        record_materialization(instance, "predictions", "2026-06-15")  # last week's does not count
        assert not automation.deadline_result(instance, at("2026-06-22T09:05")).passed
        record_materialization(instance, "predictions", "2026-06-22")
        assert automation.deadline_result(instance, at("2026-06-22T09:05")).passed


def test_deadline_check_runs_after_the_deadline_and_after_each_scoring(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick("2026-06-22T08:00")
        ticks.tick("2026-06-22T08:59")
        assert DEADLINE_CHECK not in ticks.checks_requested()
        ticks.tick("2026-06-22T09:01")
        assert DEADLINE_CHECK in ticks.checks_requested()
        ticks.tick("2026-06-22T09:02")
        assert DEADLINE_CHECK not in ticks.checks_requested()
        record_materialization(instance, "predictions", "2026-06-22")
        ticks.tick("2026-06-22T10:00")
        assert DEADLINE_CHECK in ticks.checks_requested()


# --- schedules and sensors of the code location ----------------------------------------------------


def test_schedules_request_the_same_partitions_and_start_stopped():
    from churn_assets.definitions import defs as location

    repository = location.get_repository_def()
    weekly = repository.get_schedule_def("weekly_retrain_schedule")
    daily = repository.get_schedule_def("daily_scoring_schedule")
    assert (weekly.cron_schedule, daily.cron_schedule) == ("0 6 * * 1", "0 5 * * *")
    assert weekly.execution_timezone == daily.execution_timezone == "UTC"
    # One mechanism by default: the automation sensor runs, the schedules are the opt-in alternative.
    assert weekly.default_status == daily.default_status == dg.DefaultScheduleStatus.STOPPED
    assert repository.get_sensor_def("churn_automation_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert repository.get_sensor_def("churn_alerts_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, repository_def=repository, scheduled_execution_time=at("2026-06-15T06:00")
        )
        [run] = weekly.evaluate_tick(context).run_requests
        assert run.partition_key == newest_labelled("2026-06-15")
        context = dg.build_schedule_context(
            instance=instance, repository_def=repository, scheduled_execution_time=at("2026-06-22T05:00")
        )
        [run] = daily.evaluate_tick(context).run_requests
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
            "2026-06-15",
            "2026-06-22",
        )
    assert set(repository.get_job("weekly_retrain_job").asset_layer.executable_asset_keys) == {
        dg.AssetKey(name) for name in ("instances_modeling", *RETRAIN_DOWNSTREAM)
    }
    assert set(repository.get_job("daily_scoring_job").asset_layer.executable_asset_keys) == {
        dg.AssetKey("instances_w1"),
        dg.AssetKey("predictions"),
    }


def test_code_location_attaches_the_cadence_to_every_computed_asset():
    from churn_assets.definitions import defs as location

    graph = location.resolve_asset_graph()
    for name in ASSETS:
        node = graph.get(dg.AssetKey(name))
        assert node.automation_condition is not None, name
    for name in ("instances_w1", "predictions", "instances_modeling", "churn_model", "model_evaluation"):
        assert graph.get(dg.AssetKey(name)).freshness_policy is not None, name
    assert DEADLINE_CHECK in graph.asset_check_keys
