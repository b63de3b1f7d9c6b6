"""instances_modeling and instances_w1: the talk's two Spark SQL tables, one CSV per cohort week."""
# No `from __future__ import annotations` in asset modules: Dagster reads the context annotation.


import json
import time

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from churn_assets.assets.raw import OWNER, RAW_ASSETS
from churn_assets.contract import INSTANCES_MODELING_DIR, INSTANCES_W1_DIR
from churn_assets.raw_tables import ContractViolation
from churn_assets.features import TABLES, compute_feature_table, write_weekly_csv
from churn_assets.partitions import cohort_weeks, labelled_weeks, window_weeks
from churn_assets.quality import exclusion_records, exclusions_path
from churn_assets.settings import SETTINGS
from resources.storage import StorageRoot


def materialize_feature_table(
    context: dg.AssetExecutionContext, table: str, spark: LazyPySparkResource, storage: StorageRoot
) -> dg.MaterializeResult:
    first_week, last_week = window_weeks(context)
    started = time.perf_counter()
    try:
        result = compute_feature_table(
            spark.spark_session, storage, table, first_week, last_week, SETTINGS.label_window_days
        )
    except ContractViolation as exc:
        # Bad input is the upstream's to fix: say what and where, not a JVM stack trace.
        raise dg.Failure(description=f"{table}: {exc}", allow_retries=False) from exc
    written = write_weekly_csv(storage, result)
    # Rows excluded by definition, per cohort week, for the `exclusions` asset check.
    for week, record in exclusion_records(table, result.exclusions, result.weeks).items():
        storage.write_text(exclusions_path(table, week), json.dumps(record, indent=2))
    seconds = time.perf_counter() - started
    for raw_table, weeks in result.missing_partitions.items():
        context.log.warning(f"{table}: raw table {raw_table} has no partition for week(s) {', '.join(weeks)}")
    context.log.info(f"{table}: wrote {sum(written.values())} rows in {len(written)} week file(s) in {seconds:.1f}s")
    metadata: dict[str, object] = {
        "rows": sum(written.values()),
        "rows_by_week": written,
        "path": dg.MetadataValue.path(storage.uri(TABLES[table][1])),
        "seconds": round(seconds, 2),
        "excluded_raw_rows": dg.MetadataValue.md(result.exclusions.to_markdown(index=False))
        if len(result.exclusions)
        else "none",
        "missing_raw_partitions": result.missing_partitions or "none",
    }
    if "retained" in result.rows:
        metadata["positive_rate"] = round(float(result.rows["retained"].mean()), 4) if len(result.rows) else 0.0
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=labelled_weeks,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=RAW_ASSETS,
    group_name="feature_tables",
    kinds={"spark", "csv"},
    owners=[OWNER],
    description=(
        "Training table: week-1 usage features and the `retained` label of every evaluator of a "
        "cohort week whose label window has closed. Spark SQL (sql/instances_modeling.sql); one CSV "
        f"per cohort week under {INSTANCES_MODELING_DIR}/."
    ),
)
def instances_modeling(
    context: dg.AssetExecutionContext, spark: LazyPySparkResource, storage: StorageRoot
) -> dg.MaterializeResult:
    return materialize_feature_table(context, "instances_modeling", spark, storage)


@dg.asset(
    partitions_def=cohort_weeks,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=RAW_ASSETS[:2],
    group_name="feature_tables",
    kinds={"spark", "csv"},
    owners=[OWNER],
    description=(
        "Scoring table: week-1 usage features of every evaluator of a cohort week, the week in "
        "progress included (features of the days landed so far). Spark SQL (sql/instances_w1.sql); "
        f"one CSV per cohort week under {INSTANCES_W1_DIR}/."
    ),
)
def instances_w1(
    context: dg.AssetExecutionContext, spark: LazyPySparkResource, storage: StorageRoot
) -> dg.MaterializeResult:
    return materialize_feature_table(context, "instances_w1", spark, storage)
