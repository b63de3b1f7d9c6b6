"""Dagster resources, bound per environment in one place: `resources_for_environment`.

CHURN_ENV selects the environment (read when the definitions load, not at import):
- `local` (default): storage root ./data (or CHURN_DATA_ROOT), Spark in local mode;
- `test`: the same, for the test suite, with CHURN_DATA_ROOT pointing at a temporary folder;
- `prod`: CHURN_DATA_ROOT is required; Spark on CHURN_SPARK_MASTER or CHURN_SPARK_REMOTE.

In every environment, CHURN_EMR_SERVERLESS_APPLICATION_ID moves the feature tables' Spark onto
EMR Serverless (`emr_serverless_for_environment`), and CHURN_ALERT_WEBHOOK, when set, is the alerts'
webhook, bound as a `dg.EnvVar` (the URL is a secret).
"""

from __future__ import annotations

import os

import dagster as dg

from resources.alert_webhook import AlertWebhook, alert_webhook_from_environment
from resources.emr_serverless import EMRServerlessFeatureJobs
from resources.spark import spark_config, spark_resource
from resources.storage import S3_SCHEME, StorageRoot

ENVIRONMENTS = ("local", "test", "prod")
DEFAULT_LOCAL_ROOT = "data"


def current_environment() -> str:
    env = os.environ.get("CHURN_ENV", "local").strip().lower() or "local"
    if env not in ENVIRONMENTS:
        raise ValueError(f"CHURN_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env


def resources_for_environment(env: str | None = None) -> dict[str, object]:
    env = env or current_environment()
    if env == "prod":
        if not os.environ.get("CHURN_DATA_ROOT"):
            raise ValueError("CHURN_ENV=prod needs CHURN_DATA_ROOT (a folder or s3://bucket/prefix)")
        storage = StorageRoot(root=dg.EnvVar("CHURN_DATA_ROOT"))
    else:
        storage = StorageRoot(root=os.environ.get("CHURN_DATA_ROOT", DEFAULT_LOCAL_ROOT))
    resources: dict[str, object] = {
        "storage": storage,
        "spark": spark_resource(
            master=os.environ.get("CHURN_SPARK_MASTER") or None,
            remote=os.environ.get("CHURN_SPARK_REMOTE") or None,
        ),
        "io_manager": io_manager_for(os.environ.get("CHURN_DATA_ROOT", "")),
        "emr_serverless": emr_serverless_for_environment(),
        "alert_webhook": alert_webhook_from_environment(),
    }
    resources["catalog"] = table_catalog_for(env, resources["spark"])
    return resources


def io_manager_for(root: str) -> dg.ConfigurableIOManager | dg.IOManager:
    """Dagster's own IO: beside the data in S3, in memory locally.

    Assets persist what matters under the storage root themselves (no pickle there); the IO
    manager only carries values between steps, which a run in S3 keeps in S3 so that a step
    retried in another process finds them.
    """
    if root.startswith(S3_SCHEME):
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        bucket, _, prefix = root[len(S3_SCHEME):].partition("/")
        return S3PickleIOManager(
            s3_resource=S3Resource(), s3_bucket=bucket, s3_prefix="/".join(p for p in (prefix.strip("/"), "dagster_io") if p)
        )
    return dg.InMemoryIOManager()


def emr_serverless_for_environment() -> EMRServerlessFeatureJobs:
    """The EMR Serverless application of the feature tables, or none (Spark in process).

    CHURN_EMR_SERVERLESS_APPLICATION_ID switches it on and then needs
    CHURN_EMR_SERVERLESS_EXECUTION_ROLE_ARN (the role the job runs as: no credential is passed) and
    CHURN_EMR_SERVERLESS_ENTRY_POINT (s3:// URI of churn_assets/emr_job.py), and the storage root
    in S3, where the job reads and writes. Optional: CHURN_EMR_SERVERLESS_ARCHIVES (the venv
    archive, `s3://.../venv.tar.gz#environment`) and CHURN_EMR_SERVERLESS_SPARK_PARAMS (more
    sparkSubmitParameters). Region and the Dagster side's credentials: the standard AWS environment.
    """
    if not os.environ.get("CHURN_EMR_SERVERLESS_APPLICATION_ID"):
        return EMRServerlessFeatureJobs()
    required = ("CHURN_EMR_SERVERLESS_EXECUTION_ROLE_ARN", "CHURN_EMR_SERVERLESS_ENTRY_POINT")
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        raise ValueError(f"CHURN_EMR_SERVERLESS_APPLICATION_ID is set: set {' and '.join(missing)} too")
    if not os.environ.get("CHURN_DATA_ROOT", "").startswith(S3_SCHEME):
        raise ValueError("CHURN_EMR_SERVERLESS_APPLICATION_ID needs CHURN_DATA_ROOT in S3 (s3://bucket/prefix)")

    def from_env(name: str) -> object:
        return dg.EnvVar(name) if os.environ.get(name) else None

    return EMRServerlessFeatureJobs(
        application_id=dg.EnvVar("CHURN_EMR_SERVERLESS_APPLICATION_ID"),
        execution_role_arn=dg.EnvVar("CHURN_EMR_SERVERLESS_EXECUTION_ROLE_ARN"),
        entry_point=dg.EnvVar("CHURN_EMR_SERVERLESS_ENTRY_POINT"),
        archives=from_env("CHURN_EMR_SERVERLESS_ARCHIVES"),
        spark_submit_parameters=from_env("CHURN_EMR_SERVERLESS_SPARK_PARAMS"),
    )


def table_catalog_for(env: str, spark: object) -> object:
    """Where `athena_tables` registers the output tables: Athena in prod, Spark SQL elsewhere.

    Athena: dagster-aws's AthenaClientResource on workgroup CHURN_ATHENA_WORKGROUP (default
    `primary`); query results go to CHURN_ATHENA_OUTPUT_LOCATION (s3://...) when set, else to the
    workgroup's own result location. Region and credentials come from the standard AWS environment.
    Both name the database CHURN_CATALOG_DATABASE (default `churn`).
    """
    from churn_assets.assets.catalog import DEFAULT_DATABASE, AthenaTableCatalog, SparkTableCatalog

    database = os.environ.get("CHURN_CATALOG_DATABASE") or DEFAULT_DATABASE
    if env != "prod":
        return SparkTableCatalog(database=database, spark=spark)
    from dagster_aws.athena import AthenaClientResource

    def from_env(name: str, default: str | None) -> object:
        return dg.EnvVar(name) if os.environ.get(name) else default

    return AthenaTableCatalog(
        database=database,
        athena=AthenaClientResource(workgroup=from_env("CHURN_ATHENA_WORKGROUP", "primary")),
        output_location=from_env("CHURN_ATHENA_OUTPUT_LOCATION", None),
    )


__all__ = [
    "AlertWebhook",
    "EMRServerlessFeatureJobs",
    "StorageRoot",
    "current_environment",
    "emr_serverless_for_environment",
    "resources_for_environment",
    "table_catalog_for",
    "spark_config",
    "spark_resource",
]
