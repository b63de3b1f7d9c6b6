"""Shared fixtures: one Spark session for the whole test run, temporary storage roots."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("CHURN_ENV", "test")
# Step retries stay on (the assets' real policy) but without the production delay between tries.
os.environ.setdefault("CHURN_STEP_RETRY_DELAY_SECONDS", "0")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyspark")


@pytest.fixture(scope="session")
def spark():
    """The one Spark session of the run: every LazyPySparkResource's getOrCreate returns it."""
    from pyspark.sql import SparkSession

    from resources.spark import spark_config

    builder = SparkSession.builder
    for key, value in spark_config(cores=2).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture()
def storage(tmp_path):
    from resources.storage import StorageRoot

    return StorageRoot(root=str(tmp_path / "root"))


@pytest.fixture()
def resources(spark, storage):
    """Resources as the test environment binds them, on a fresh storage root."""
    import dagster as dg

    from resources.emr_serverless import EMRServerlessFeatureJobs
    from resources.spark import spark_resource

    return {
        "spark": spark_resource(),
        "storage": storage,
        "io_manager": dg.InMemoryIOManager(),
        "emr_serverless": EMRServerlessFeatureJobs(),  # none: Spark in process
    }


@pytest.fixture(autouse=True)
def _no_leaked_defs_state_storage():
    """Each test starts and ends without a Dagster defs-state storage in the context.

    Some Dagster calls made under `dg.instance_for_test()` (the schedule and sensor evaluations)
    leave that instance's state storage installed after the instance is gone; the next
    `Definitions` to resolve then opens the deleted instance's SQLite file and fails.
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield
