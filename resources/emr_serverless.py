"""EMR Serverless for the feature tables: one job run per Dagster run, through Dagster Pipes.

When `application_id` is set (CHURN_EMR_SERVERLESS_APPLICATION_ID), `instances_modeling` and
`instances_w1` do not start Spark in the Dagster process: `EMRServerlessFeatureJobs.materialize`
submits churn_assets/emr_job.py as one job run for the run's whole range of cohort weeks, through
dagster-aws's `PipesEMRServerlessClient`, and returns the materialization the job reports back.
The job runs with the application's execution role; no credential is passed to it.

Messages come back through S3, under `dagster_pipes/` of the storage root, not through the
client's default CloudWatch reader:
- dagster-aws 0.29.27 attaches its CloudWatch readers only once a job run has succeeded, so the
  reason a job failed (a contract violation, say) would never reach Dagster; the S3 reader polls
  from the start of the run, failed runs included;
- the execution role and Dagster already write and read the storage root: no CloudWatch logging
  configuration and no logs:GetLogEvents permission are needed.
With any reader but CloudWatch's the client logs "... is not supported for EMR Serverless. Dagster
won't be able to receive logs and messages from the job": it only means that the client attaches
no CloudWatch readers itself; the S3 reader receives the messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any

import dagster as dg
from dagster_aws.pipes import PipesEMRServerlessClient, PipesS3MessageReader

from resources.storage import SPARK_S3A_ENV, StorageRoot

# Beside `dagster_io` under the storage root: the Pipes message chunks of the job runs.
PIPES_MESSAGES_DIR = "dagster_pipes"
DRIVER_ENV_CONF = "spark.emr-serverless.driverEnv."
# The engine event in which Dagster records an exception the job raised inside open_dagster_pipes
# (dagster/_core/pipes/context.py, PipesMessageHandler._handle_closed).
PIPES_CLOSED_WITH_EXCEPTION = "[pipes] external process pipes closed with exception"


class StorageRootS3MessageReader(PipesS3MessageReader):
    """PipesS3MessageReader whose chunks land below `key_prefix` of the bucket, not at its root."""

    def __init__(self, *, key_prefix: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.key_prefix = key_prefix.strip("/")

    @contextmanager
    def get_params(self) -> Iterator[dict[str, Any]]:
        with super().get_params() as params:
            yield {**params, "key_prefix": f"{self.key_prefix}/{params['key_prefix']}"}


def storage_message_reader(storage: StorageRoot) -> StorageRootS3MessageReader:
    if not storage.is_s3:
        raise ValueError(
            f"EMR Serverless needs the storage root in S3 (s3://bucket/prefix), not {storage.root!r}: "
            "the job reads and writes it from AWS"
        )
    backend = storage.backend
    return StorageRootS3MessageReader(bucket=backend.bucket, client=backend.client, key_prefix=backend.key(PIPES_MESSAGES_DIR))


def job_driver_env(storage_root: str, label_window_days: int) -> dict[str, str]:
    """What churn_assets/emr_job.py reads from its environment. Only the driver reads it: it
    computes every path and hands the executors plain Spark reads."""
    return {"CHURN_DATA_ROOT": storage_root, "CHURN_LABEL_WINDOW_DAYS": str(label_window_days), SPARK_S3A_ENV: "1"}


def start_job_run_params(
    *,
    application_id: str,
    execution_role_arn: str,
    entry_point: str,
    name: str,
    driver_env: Mapping[str, str],
    archives: str | None = None,
    spark_submit_parameters: str | None = None,
) -> dict[str, Any]:
    """The start_job_run request of one feature-table job; the Pipes client adds its tags and its
    own driverEnv confs (DAGSTER_PIPES_CONTEXT, DAGSTER_PIPES_MESSAGES) to it.

    `archives` (`s3://.../venv.tar.gz#environment`) is unpacked into the folder after `#`, whose
    Python then runs the driver and the executors' workers. `spark_submit_parameters` come last, so
    they override ours.
    """
    confs = {DRIVER_ENV_CONF + key: value for key, value in driver_env.items()}
    if archives:
        folder = archives.partition("#")[2]
        if not folder:
            raise ValueError(f"archives {archives!r} needs '#<folder>' (e.g. '#environment'): Spark unpacks it there")
        python = f"./{folder}/bin/python"
        confs |= {
            "spark.archives": archives,
            DRIVER_ENV_CONF + "PYSPARK_DRIVER_PYTHON": python,
            DRIVER_ENV_CONF + "PYSPARK_PYTHON": python,
            "spark.executorEnv.PYSPARK_PYTHON": python,
        }
    for key, value in confs.items():
        # sparkSubmitParameters is one string, split on whitespace.
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"--conf {key}={value!r}: a Spark submit parameter cannot be empty or hold whitespace")
    parameters = " ".join(f"--conf {key}={value}" for key, value in confs.items())
    if spark_submit_parameters and spark_submit_parameters.strip():
        parameters += " " + spark_submit_parameters.strip()
    return {
        "applicationId": application_id,
        "executionRoleArn": execution_role_arn,
        "name": name,
        "jobDriver": {"sparkSubmit": {"entryPoint": entry_point, "sparkSubmitParameters": parameters}},
    }


class EMRServerlessFeatureJobs(dg.ConfigurableResource):
    """The EMR Serverless application the feature tables run on, or none (the default): then
    `enabled` is false and the assets run Spark in process."""

    application_id: str | None = None
    execution_role_arn: str | None = None
    entry_point: str | None = None  # s3:// URI of churn_assets/emr_job.py
    archives: str | None = None  # s3://.../venv.tar.gz#environment, packed with venv-pack
    spark_submit_parameters: str | None = None  # appended to ours

    @property
    def enabled(self) -> bool:
        return bool(self.application_id)

    def pipes_client(self, storage: StorageRoot) -> PipesEMRServerlessClient:
        """boto3's EMR Serverless client from the AWS environment; messages through S3."""
        return PipesEMRServerlessClient(message_reader=storage_message_reader(storage))

    def materialize(
        self,
        context: dg.AssetExecutionContext,
        storage: StorageRoot,
        table: str,
        first_week: date,
        last_week: date,
        label_window_days: int,
    ) -> dg.MaterializeResult:
        """One job run: `table` for the cohort weeks first_week..last_week, as the job reported it."""
        if not (self.application_id and self.execution_role_arn and self.entry_point):
            raise ValueError("EMR Serverless needs an application id, an execution role ARN and an entry point")
        weeks = f"{first_week.isoformat()}..{last_week.isoformat()}"
        params = start_job_run_params(
            application_id=self.application_id,
            execution_role_arn=self.execution_role_arn,
            entry_point=self.entry_point,
            name=f"churn {table} {weeks}",
            driver_env=job_driver_env(storage.root, label_window_days),
            archives=self.archives,
            spark_submit_parameters=self.spark_submit_parameters,
        )
        extras = {"table": table, "first_week": first_week.isoformat(), "last_week": last_week.isoformat()}
        started = time.time()
        try:
            invocation = self.pipes_client(storage).run(context=context, start_job_run_params=params, extras=extras)
        except RuntimeError as exc:  # the client's bare "EMR Serverless job failed"
            raise job_failure(context, f"{table} weeks {weeks}", exc, since=started) from exc
        # No implicit materialization: a job that exits 0 without reporting (another entry point, a
        # lost message) has not shown that it wrote the weeks.
        return invocation.get_materialize_result(implicit_materialization=False)


def job_failure(context: dg.AssetExecutionContext, what: str, exc: Exception, since: float) -> dg.Failure:
    """The step's failure, with the reason the job reported through Pipes when it did.

    A contract violation fails as in process: its own message (table, partition, column) and no
    retry, since the input is the upstream's to fix.
    """
    reported = reported_exception(context, since)
    if reported is None:
        return dg.Failure(description=f"{what}: {exc}; no reason came back through Pipes: see the job run's driver log")
    message = reported.message.strip()
    if reported.cls_name == "ContractViolation":
        # "churn_assets.raw_tables.ContractViolation: <table>: ...": the in-process description
        return dg.Failure(description=message.partition("ContractViolation: ")[2], allow_retries=False)
    return dg.Failure(description=f"{what}: EMR Serverless job run failed: {message}")


def reported_exception(context: dg.AssetExecutionContext, since: float):
    """The exception this step's job raised inside open_dagster_pipes, if its messages came in
    (recorded after `since`, so not an earlier attempt's)."""
    step_key = context.get_step_execution_context().step.key
    records = context.instance.get_records_for_run(context.run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    for record in reversed(records):
        event = record.event_log_entry.dagster_event
        if record.timestamp < since:
            break
        if event and event.step_key == step_key and event.message == PIPES_CLOSED_WITH_EXCEPTION:
            return event.engine_event_data.error
    return None
