"""behavior_report: the talk's behaviour questions answered weekly, for marketing.

Thin wiring: the numbers and charts come from churn_assets.report (pure pandas + matplotlib); the
day-by-day usage for activation is what instances_modeling wrote beside each week's table
(sql/w1_daily.sql over the same week-1 events as the features), so the report runs no Spark and
reads no raw data. Output under models/reports/v0/WEEK/: the PNG charts, summary.md (one page, links
the charts) and report.json (every number); the charts are also shown in the Dagster UI.
"""
# No `from __future__ import annotations` in asset modules: Dagster reads the context annotation.

import base64
import math
import time

import dagster as dg

from churn_assets.assets.ml import churn_model, training_rows, training_window
from churn_assets.assets.raw import OWNER
from churn_assets.assets.tables import instances_modeling
from churn_assets.ml.model import cohort_week_keys
from churn_assets.partitions import labelled_weeks
from churn_assets.registry import MissingArtefact, read_daily_usage, read_model
from churn_assets.report import (
    CHART_FILES,
    DAILY_COLUMNS,
    DAILY_COUNT_COLUMNS,
    SUMMARY_FILE,
    TABLES_FILE,
    ActivationRule,
    build_behavior_report,
)
from churn_assets.settings import SETTINGS
from resources.storage import StorageRoot

REPORTS_DIR = "models/reports/v0"


class BehaviorReportConfig(dg.Config):
    """Activation over week 1: activated by day d = at least `activation_min_users` distinct active
    users and, for each entry of `activation_min_counts` (a daily count column, e.g.
    number_of_issues, number_of_invites), at least that many events, over days 1..d."""

    activation_min_users: int = 2
    activation_min_counts: dict[str, float] = {"number_of_issues": 1}
    top_features: int = 4
    cohort_bins: int = 10


def daily_usage(storage: StorageRoot, frame):
    """The week-1 usage day by day of the evaluators in `frame`, as instances_modeling wrote it."""
    daily = read_daily_usage(storage, sorted(set(cohort_week_keys(frame))))
    daily = daily[daily["instance"].isin(frame["instance"])]
    return daily[list(DAILY_COLUMNS)].sort_values(["instance", "day_index"]).reset_index(drop=True)


def embedded_image(title: str, png: bytes) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
    partitions_def=labelled_weeks,
    deps=[dg.AssetDep(instances_modeling, partition_mapping=training_window), churn_model],
    group_name="insights",
    kinds={"pandas", "markdown"},
    owners=[OWNER],
    description=(
        "Why evaluators who buy and those who leave differ, on the model's training window: the "
        "talk's three charts (average activities, counts, daily active users: retained vs "
        "churned), the feature-label correlation table beside the talk's, global feature "
        "importance (mean |SHAP|), conversion by decile of the top features, and activation over "
        "week 1 day by day (share activated, conversion of activated vs not, the behaviours that "
        f"separate converters each day). PNGs, summary.md and report.json under {REPORTS_DIR}/WEEK/."
    ),
)
def behavior_report(
    context: dg.AssetExecutionContext,
    config: BehaviorReportConfig,
    storage: StorageRoot,
) -> dg.MaterializeResult:
    week = context.partition_key
    started = time.perf_counter()
    frame, missing_weeks = training_rows(context, storage)
    try:
        model = read_model(storage, week)
    except MissingArtefact as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    try:
        rule = ActivationRule(config.activation_min_users, config.activation_min_counts)
    except ValueError as exc:
        raise dg.Failure(description=f"behavior_report config: {exc} ({', '.join(DAILY_COUNT_COLUMNS)})",
                         allow_retries=False) from exc
    try:
        daily = daily_usage(storage, frame)
    except MissingArtefact as exc:
        raise dg.Failure(
            description=f"behavior_report {week}: {exc} (instances_modeling writes it beside each week's table)",
            allow_retries=False,
        ) from exc
    report = build_behavior_report(
        frame,
        daily,
        model.preprocessor,
        model.booster,
        rule=rule,
        top_n=config.top_features,
        bins=config.cohort_bins,
        label_window_days=SETTINGS.label_window_days,
    )
    if report.daily_feature_mismatches:
        context.log.warning(
            f"behavior_report {week}: day-by-day usage of {report.daily_feature_mismatches} evaluator(s) does not "
            "add up to their instances_modeling features: a week's table and daily file come from different runs"
        )
    folder = f"{REPORTS_DIR}/{week}"
    paths = {name: storage.write_bytes(f"{folder}/{name}", png) for name, png in report.charts.items()}
    paths[TABLES_FILE] = storage.write_text(f"{folder}/{TABLES_FILE}", report.to_json())
    paths[SUMMARY_FILE] = storage.write_text(f"{folder}/{SUMMARY_FILE}", report.markdown())

    activation = report.activation
    metadata = {
        # the summary without its chart links (the charts follow as their own entries)
        "summary": dg.MetadataValue.md(report.markdown().split("\n## Charts")[0]),
        "path": dg.MetadataValue.path(storage.uri(folder)),
        "summary_path": dg.MetadataValue.path(paths[SUMMARY_FILE]),
        "model_version": model.version,
        "evaluators": report.evaluators,
        "conversion_rate": round(report.conversion_rate, 4),
        "talk_rank_agreement": "n/a" if math.isnan(report.talk_rank_agreement) else round(report.talk_rank_agreement, 3),
        "correlations": dg.MetadataValue.md(
            report.correlations.round(3).to_markdown(index=False)),
        "activation_rule": rule.describe(),
        "activated_share_by_day": {int(d): round(float(s), 4) for d, s in activation["activated_share"].items()},
        "daily_feature_mismatches": report.daily_feature_mismatches,
        "missing_training_weeks": missing_weeks or "none",
        "seconds": round(time.perf_counter() - started, 1),
    }
    for key, name in CHART_FILES.items():
        if name in report.charts:
            metadata[f"chart_{key}"] = dg.MetadataValue.md(
                embedded_image(key.replace("_", " "), report.charts[name]) + f"\n\n`{paths[name]}`"
            )
    return dg.MaterializeResult(metadata=metadata)


REPORT_ASSETS = [behavior_report]
