"""Refresh cadence and freshness: when each asset runs on its own, and when it counts as stale.

Cadence (all times UTC)
- Weekly retrain, Monday 06:00: `instances_modeling` for the newest labelled cohort week (its
  partition appears at Monday 00:00), then `preprocessor`, `churn_model` and `model_evaluation`
  (eager: each runs once its parents updated and their blocking checks passed).
- Daily scoring, 05:00: `instances_w1` and `predictions` for the week in progress AND the previous
  week. Built-in conditions consider only the latest time partition; with `cohort_weeks`
  (end_offset=1) that is the week in progress only, so evaluators who started on Sunday (their
  week 1 runs into the next week) would never be re-scored. The conditions below widen the window
  to the two latest partitions with `in_latest_time_window(lookback_delta=2 weeks)`.

One mechanism runs by default: declarative automation, through `churn_automation_sensor`
(RUNNING by default). The schedules `weekly_retrain_schedule` and `daily_scoring_schedule` express
the same cadence as plain jobs and start STOPPED: turn them on only with the automation sensor
turned off, or every refresh runs twice.

Freshness (Dagster's `FreshnessPolicy`, evaluated by the freshness daemon of `dagster dev`):
`instances_w1` and `predictions` fail after 26 hours (daily run plus 2 hours' slack),
`instances_modeling`, `churn_model` and `model_evaluation` after 8 days (weekly plus a day). A
policy judges the newest materialization of any partition, so the asset check
`predictions:current_week_deadline` checks the partition itself: this week's predictions exist by
Monday 09:00 (our own check: `build_time_partition_freshness_checks` is superseded and warns).
A failed policy re-runs only the latest partition of the stale asset, once per failure.
"""

# No `from __future__ import annotations`: Dagster reads the check's context annotation.

import warnings
from collections.abc import Sequence
from datetime import datetime, time, timedelta, timezone

import dagster as dg

from churn_assets.assets.ml import predictions
from churn_assets.assets.raw import RAW_ASSETS
from churn_assets.partitions import cohort_weeks, labelled_weeks
from churn_assets.weeks import week_key, week_of

TIMEZONE = "UTC"
WEEKLY_RETRAIN_CRON = "0 6 * * 1"  # Monday 06:00: the newest labelled week's partition exists since 00:00
DAILY_SCORING_CRON = "0 5 * * *"  # every day 05:00: yesterday's usage has landed
PREDICTIONS_DEADLINE = time(9, 0)  # Monday 09:00: this week's predictions must exist
PREDICTIONS_DEADLINE_CRON = f"{PREDICTIONS_DEADLINE.minute} {PREDICTIONS_DEADLINE.hour} * * 1"
# The daily refresh covers the week in progress and the week before (Sunday starters' week 1).
SCORING_WEEKS = 2

DAILY_FAIL_WINDOW = timedelta(hours=26)
WEEKLY_FAIL_WINDOW = timedelta(days=8)

RETRAIN_ASSETS = ("instances_modeling", "preprocessor", "churn_model", "model_evaluation")
SCORING_ASSETS = ("instances_w1", "predictions")
# External tables that never record a materialization: on_cron would wait for them forever.
RAW_TABLES = dg.AssetSelection.assets(*(spec.key for spec in RAW_ASSETS))
# predictions picks the newest *promoted* model from storage itself; its lineage edge to churn_model
# must neither hold scoring back (the newest labelled week has no model until Monday's retrain) nor
# let churn_model's checks (a model that failed its gate is simply not used) block it.
MODEL_LINEAGE = dg.AssetSelection.assets("preprocessor", "churn_model", "model_evaluation")

AC = dg.AutomationCondition
AssetLike = dg.AssetsDefinition | dg.AssetSpec


def latest_weeks(weeks: int = SCORING_WEEKS) -> dg.AutomationCondition:
    """The `weeks` latest weekly partitions (the built-ins take only the latest)."""
    return AC.in_latest_time_window(lookback_delta=timedelta(weeks=weeks))


def freshness_rerun() -> dg.AutomationCondition:
    """A failed freshness policy re-runs the latest partition once, not a backfill of them all."""
    return (
        AC.in_latest_time_window()
        & AC.freshness_failed().newly_true()
        & ~AC.in_progress()
        & ~AC.any_deps_in_progress()
    ).with_label("freshness_failed_rerun_latest")


def weekly_root() -> dg.AutomationCondition:
    return AC.on_cron(WEEKLY_RETRAIN_CRON, TIMEZONE).ignore(RAW_TABLES) | freshness_rerun()


def daily_root() -> dg.AutomationCondition:
    on_cron = (
        AC.on_cron(DAILY_SCORING_CRON, TIMEZONE)
        .replace("in_latest_time_window", latest_weeks())
        .with_label(f"on_cron({DAILY_SCORING_CRON}, {TIMEZONE}) over the {SCORING_WEEKS} latest weeks")
    )
    return on_cron.ignore(RAW_TABLES) | freshness_rerun()


def no_parent_partition_failed_blocking_check() -> dg.AutomationCondition:
    """No parent partition that this one reads has failed a blocking check (unless re-run now)."""
    failed = (AC.check_failed() & ~AC.will_be_requested()).with_label("blocking check failed")
    return (~AC.any_deps_match(AC.any_checks_match(failed, blocking_only=True))).with_label(
        "no parent partition failed a blocking check"
    )


def parents_blocking_checks_passed() -> dg.AutomationCondition:
    """The parents' blocking checks passed, and none failed on any parent partition read.

    `all_deps_blocking_checks_passed()` alone is not enough for the training window: through a
    partition mapping it is true when ANY mapped parent partition passed, so a week of the 13-week
    window whose blocking check failed would not hold the model back. The second half catches
    that. It looks for failures rather than requiring a pass on all 13 weeks because a single-run
    backfill over several weeks records its checks without a partition: requiring a per-week pass
    would block retraining after every backfill. (Such a backfill fails as a run when a blocking
    check fails, and churn_alerts_sensor reports it.)
    """
    return AC.all_deps_blocking_checks_passed() & no_parent_partition_failed_blocking_check()


def gated_eager() -> dg.AutomationCondition:
    """Eager, but never past a failed (or not yet evaluated) blocking check of a parent partition."""
    return AC.eager() & parents_blocking_checks_passed()


def scoring_eager() -> dg.AutomationCondition:
    """Eager over the two latest weeks, requested in the same tick as instances_w1's daily refresh.

    Not `all_deps_blocking_checks_passed()`: instances_w1's daily run covers two weeks in one run,
    whose checks are recorded without a partition, so that condition would never hold afterwards,
    and checks without a condition of their own do not count as `will_be_requested` in the tick
    that requests instances_w1. In that tick predictions joins the same run (or backfill), where a
    failed blocking check of instances_w1 stops it; later, an explicit failure still holds it back.
    """
    eager = (
        latest_weeks()
        & (AC.newly_missing() | AC.any_deps_updated()).since_last_handled()
        & ~AC.any_deps_missing().ignore(MODEL_LINEAGE)
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label(f"eager over the {SCORING_WEEKS} latest weeks")
    return (eager & no_parent_partition_failed_blocking_check().ignore(MODEL_LINEAGE)) | freshness_rerun()


def retrain_eager() -> dg.AutomationCondition:
    return gated_eager() | freshness_rerun()


AUTOMATION_CONDITIONS: dict[str, dg.AutomationCondition] = {
    "instances_modeling": weekly_root(),
    "preprocessor": gated_eager(),
    "churn_model": retrain_eager(),
    "model_evaluation": retrain_eager(),
    "instances_w1": daily_root(),
    "predictions": scoring_eager(),
}

FRESHNESS_POLICIES: dict[str, dg.FreshnessPolicy] = {
    "instances_w1": dg.FreshnessPolicy.time_window(fail_window=DAILY_FAIL_WINDOW),
    "predictions": dg.FreshnessPolicy.time_window(fail_window=DAILY_FAIL_WINDOW),
    "instances_modeling": dg.FreshnessPolicy.time_window(fail_window=WEEKLY_FAIL_WINDOW),
    "churn_model": dg.FreshnessPolicy.time_window(fail_window=WEEKLY_FAIL_WINDOW),
    "model_evaluation": dg.FreshnessPolicy.time_window(fail_window=WEEKLY_FAIL_WINDOW),
}


def apply_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The cadence and freshness of one asset spec; other specs pass through unchanged."""
    name = spec.key.to_user_string()
    if name in FRESHNESS_POLICIES:
        spec = dg.apply_freshness_policy(spec, FRESHNESS_POLICIES[name])
    if name in AUTOMATION_CONDITIONS:
        spec = spec.replace_attributes(automation_condition=AUTOMATION_CONDITIONS[name])
    return spec


def with_automation(assets: Sequence[AssetLike]) -> list[AssetLike]:
    """`assets` with the conditions and policies above attached, the asset modules left untouched.

    `dg.map_asset_specs` is public and stable; `Definitions.map_resolved_asset_specs` /
    `map_asset_specs` do the same but are marked preview in Dagster 1.13 (a PreviewWarning).
    """
    return list(dg.map_asset_specs(apply_automation, assets))


# --- The partition-aware deadline: this week's predictions exist by Monday 09:00 UTC --------------


def scoring_deadline(now: datetime) -> tuple[datetime, str]:
    """(the latest Monday-09:00 deadline at or before `now`, the cohort week due by then)."""
    now = now.astimezone(timezone.utc)
    deadline = datetime.combine(week_of(now), PREDICTIONS_DEADLINE, tzinfo=timezone.utc)
    if deadline > now:
        deadline -= timedelta(weeks=1)
    return deadline, week_key(deadline.date())


def deadline_result(instance: dg.DagsterInstance, now: datetime) -> dg.AssetCheckResult:
    deadline, week = scoring_deadline(now)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=predictions.key, asset_partitions=[week]), limit=1
    ).records
    passed = bool(records)
    metadata: dict[str, object] = {
        "expected_partition": week,
        "deadline": dg.MetadataValue.timestamp(deadline),
    }
    if passed:
        scored_at = records[0].timestamp
        metadata["materialized_at"] = dg.MetadataValue.timestamp(scored_at)
        metadata["on_time"] = scored_at <= deadline.timestamp()
        description = f"predictions week={week}: scored"
    else:
        description = (
            f"predictions week={week}: not scored by the deadline {deadline:%a %Y-%m-%d %H:%M} UTC "
            "(run instances_w1 and predictions for this week)"
        )
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata
    )


@dg.asset_check(
    asset=predictions,
    name="current_week_deadline",
    description=(
        "Partition-aware freshness: the predictions partition of the week in progress exists by "
        "Monday 09:00 UTC. Evaluated right after each deadline and after each predictions update."
    ),
    automation_condition=(
        AC.cron_tick_passed(PREDICTIONS_DEADLINE_CRON, TIMEZONE)
        # after predictions landed, not in the tick that requests them (the check would race the run)
        | AC.any_deps_match(AC.newly_updated()).with_label("predictions updated")
    ).since_last_handled()
    & ~AC.in_progress()
    & ~AC.any_deps_in_progress(),
)
def predictions_current_week_deadline(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return deadline_result(context.instance, datetime.now(timezone.utc))


# --- Jobs, schedules and the automation sensor ---------------------------------------------------

# The retrain job mixes instances_modeling's single-run backfill policy with the per-week ML assets:
# Dagster then runs one week per run, which is what a weekly retrain is. Silence that notice only.
warnings.filterwarnings(
    "ignore", message=r"Asset job weekly_retrain_job materializes assets with varying BackfillPolicies"
)

weekly_retrain_job = dg.define_asset_job(
    "weekly_retrain_job",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="instances_modeling for the newest labelled week, then preprocessor, churn_model, model_evaluation.",
)

daily_scoring_job = dg.define_asset_job(
    "daily_scoring_job",
    selection=dg.AssetSelection.assets(*SCORING_ASSETS),
    description="instances_w1 and predictions for the week in progress and the week before, in one run.",
)

def newest_labelled_week(now: datetime) -> str:
    """The labelled_weeks partition that the weekly retrain trains on at `now`."""
    keys = labelled_weeks.get_partition_keys(current_time=now)
    if not keys:
        raise ValueError(f"labelled_weeks has no partition at {now.isoformat()}")
    return keys[-1]


def scoring_range(now: datetime, weeks: int = SCORING_WEEKS) -> tuple[str, str]:
    """(first, last) cohort_weeks keys of the `weeks` latest partitions at `now`."""
    keys = cohort_weeks.get_partition_keys(current_time=now)[-weeks:]
    if not keys:
        raise ValueError(f"cohort_weeks has no partition at {now.isoformat()}")
    return keys[0], keys[-1]


@dg.schedule(
    name="weekly_retrain_schedule",
    cron_schedule=WEEKLY_RETRAIN_CRON,
    execution_timezone=TIMEZONE,
    job=weekly_retrain_job,
    description="Alternative to churn_automation_sensor (which runs by default): turn one of them on, not both.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # A plain schedule: build_schedule_from_partitioned_job calls a deprecated Dagster API on every tick.
    week = newest_labelled_week(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"weekly_retrain:{week}", partition_key=week)


@dg.schedule(
    name="daily_scoring_schedule",
    cron_schedule=DAILY_SCORING_CRON,
    execution_timezone=TIMEZONE,
    job=daily_scoring_job,
    description="Alternative to churn_automation_sensor (which runs by default): turn one of them on, not both.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def daily_scoring_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    first, last = scoring_range(context.scheduled_execution_time)
    return dg.RunRequest(
        run_key=f"daily_scoring:{context.scheduled_execution_time.isoformat()}",
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


churn_automation_sensor = dg.AutomationConditionSensorDefinition(
    "churn_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates every asset's automation condition (weekly retrain, daily scoring, freshness re-runs).",
)

JOBS = [weekly_retrain_job, daily_scoring_job]
SCHEDULES = [weekly_retrain_schedule, daily_scoring_schedule]
SENSORS = [churn_automation_sensor]
ASSET_CHECKS = [predictions_current_week_deadline]
