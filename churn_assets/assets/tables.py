"""instances_modeling and instances_w1: the talk's two Spark SQL tables, one CSV per cohort week."""
# No `from __future__ import annotations` in asset modules: Dagster reads the context annotation.


import dagster as dg
from dagster_pyspark import LazyPySparkResource

from churn_assets.assets.raw import OWNER, RAW_ASSETS
from churn_assets.contract import INSTANCES_MODELING_DIR, INSTANCES_W1_DIR
from churn_assets.feature_build import build_feature_table
from churn_assets.partitions import cohort_weeks, labelled_weeks, window_weeks
from churn_assets.raw_tables import ContractViolation
from churn_assets.settings import SETTINGS
from resources.emr_serverless import EMRServerlessFeatureJobs
from resources.storage import StorageRoot


def materialize_feature_table(
    context: dg.AssetExecutionContext,
    table: str,
    spark: LazyPySparkResource,
    storage: StorageRoot,
    emr_serverless: EMRServerlessFeatureJobs,
) -> dg.MaterializeResult:
    """The run's cohort weeks of `table`: as one EMR Serverless job run when one is configured,
    else as one Spark job in this process. Both run `build_feature_table`."""
    first_week, last_week = window_weeks(context)
    if emr_serverless.enabled:
        return emr_serverless.materialize(context, storage, table, first_week, last_week, SETTINGS.label_window_days)
    try:
        build = build_feature_table(
            spark.spark_session, storage, table, first_week, last_week, SETTINGS.label_window_days, context.log
        )
    except ContractViolation as exc:
        # Bad input is the upstream's to fix: say what and where, not a JVM stack trace.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    return dg.MaterializeResult(metadata=build.dagster_metadata())


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
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
    context: dg.AssetExecutionContext,
    spark: LazyPySparkResource,
    storage: StorageRoot,
    emr_serverless: EMRServerlessFeatureJobs,
) -> dg.MaterializeResult:
    return materialize_feature_table(context, "instances_modeling", spark, storage, emr_serverless)


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
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
    context: dg.AssetExecutionContext,
    spark: LazyPySparkResource,
    storage: StorageRoot,
    emr_serverless: EMRServerlessFeatureJobs,
) -> dg.MaterializeResult:
    return materialize_feature_table(context, "instances_w1", spark, storage, emr_serverless)
