"""The EMR Serverless job of a feature table: the entry point resources/emr_serverless.py submits.

Runs as a spark-submit entry-point script (upload this file to CHURN_EMR_SERVERLESS_ENTRY_POINT;
it imports churn_assets from the job's venv archive) or as `python -m churn_assets.emr_job`, and
only under Dagster Pipes: `PipesEMRServerlessClient` passes the context (the table and the cohort
weeks, in the extras `table`, `first_week`, `last_week`) and where messages go in the driver's
environment, beside CHURN_DATA_ROOT, CHURN_LABEL_WINDOW_DAYS and CHURN_SPARK_S3A.

It runs `build_feature_table`, the in-process asset's own code, and reports the same metadata as a
materialization. An exception, a contract violation included, closes Pipes with it (Dagster records
it) and fails the job run.
"""

from __future__ import annotations

import os
import sys
from datetime import date

from dagster_pipes import PipesEnvVarParamsLoader, PipesMessageWriter, PipesS3MessageWriter, open_dagster_pipes

# The settings of resources/spark.py that decide results; master, memory and catalog are the
# cluster's to choose.
RESULT_SETTINGS = ("spark.sql.session.timeZone", "spark.sql.execution.arrow.pyspark.enabled")


def message_writer(params: dict) -> PipesMessageWriter | None:
    """S3's writer when Dagster reads the messages from S3 (production); otherwise Pipes' default,
    which writes where the params say (a file, or stdout for a CloudWatch reader)."""
    if "bucket" in params:
        import boto3

        # Credentials of the job's execution role, from the runtime's environment.
        return PipesS3MessageWriter(client=boto3.client("s3"))
    return None


def spark_session():
    from pyspark.sql import SparkSession

    from resources.spark import spark_config

    config = spark_config()
    builder = SparkSession.builder
    for key in RESULT_SETTINGS:
        builder = builder.config(key, config[key])
    return builder.getOrCreate()


def main() -> None:
    params_loader = PipesEnvVarParamsLoader()
    if not params_loader.is_dagster_pipes_process():
        sys.exit("churn_assets.emr_job runs under Dagster Pipes (PipesEMRServerlessClient sets DAGSTER_PIPES_*)")
    with open_dagster_pipes(message_writer=message_writer(params_loader.load_messages_params())) as pipes:
        # Imported inside Pipes: an import error in the archive reaches Dagster too.
        from churn_assets.feature_build import build_feature_table
        from churn_assets.settings import SETTINGS
        from resources.storage import StorageRoot

        storage = StorageRoot(root=os.environ["CHURN_DATA_ROOT"])
        build = build_feature_table(
            spark_session(),
            storage,
            pipes.get_extra("table"),
            date.fromisoformat(pipes.get_extra("first_week")),
            date.fromisoformat(pipes.get_extra("last_week")),
            SETTINGS.label_window_days,
            pipes.log,
        )
        pipes.report_asset_materialization(metadata=build.pipes_metadata())


if __name__ == "__main__":
    main()
