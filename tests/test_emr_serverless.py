"""The feature tables on EMR Serverless through Dagster Pipes, against a local fake of the API.

No AWS: `FakeEMRServerless` answers the calls PipesEMRServerlessClient makes, and its
start_job_run runs the entry point as spark-submit would, in a process whose environment holds
only the driverEnv confs of the request (and what the runtime image provides). The job starts its
own Spark in local mode.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import dagster as dg
import pyarrow as pa
import pytest
from dagster_aws.pipes import PipesEMRServerlessClient

import churn_assets.emr_job
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import INSTANCES_MODELING_DIR, RAW_USAGE_EVENTS
from churn_assets.settings import SETTINGS
from resources import emr_serverless_for_environment
from resources.emr_serverless import (
    DRIVER_ENV_CONF,
    PIPES_MESSAGES_DIR,
    EMRServerlessFeatureJobs,
    StorageRootS3MessageReader,
    job_driver_env,
    start_job_run_params,
)
from resources.storage import StorageRoot
from tests.rawdata import write_raw
from tests.s3server import MotoServer
from tests.test_feature_tables import WEEK_A, WEEK_B, D, build_raw, range_tags

APPLICATION_ID = "00fakeapplication"
ROLE_ARN = "arn:aws:iam::123456789012:role/churn-emr-serverless-job"
ENTRY_POINT = str(Path(churn_assets.emr_job.__file__))  # the file uploaded to S3 in production
# In the Dagster process's environment, never to be passed to the job.
DAGSTER_SIDE_SECRET = "dagster-process-secret-never-in-a-job-run"
REGION = "us-east-1"


def driver_env(spark_submit_parameters: str) -> dict[str, str]:
    """The `--conf spark.emr-serverless.driverEnv.K=V` pairs: the driver's environment on EMR."""
    tokens = spark_submit_parameters.split()
    pairs = [value for flag, value in zip(tokens, tokens[1:]) if flag == "--conf" and value.startswith(DRIVER_ENV_CONF)]
    return dict(pair[len(DRIVER_ENV_CONF):].split("=", 1) for pair in pairs)


class FakeEMRServerless:
    """The boto3 `emr-serverless` calls of PipesEMRServerlessClient, answered on this machine."""

    def __init__(self, workdir: Path, runtime_env: dict[str, str]):
        self.workdir, self.runtime_env = workdir, runtime_env
        self.started: list[dict] = []  # the start_job_run requests, as received
        self.states: dict[str, list[str]] = {}  # job run id -> the states get_job_run reported
        self.runs: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start_job_run(self, **params):
        self.started.append(copy.deepcopy(params))
        run_id = f"job{len(self.started)}"
        submit = params["jobDriver"]["sparkSubmit"]
        stderr = self.workdir / f"{run_id}.stderr"
        with open(self.workdir / f"{run_id}.stdout", "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, submit["entryPoint"], *submit.get("entryPointArguments", [])],
                env={**self.runtime_env, **driver_env(submit.get("sparkSubmitParameters", ""))},
                cwd=self.workdir, stdout=out, stderr=err,
            )
        self.runs[run_id] = (process, stderr)
        return {"applicationId": params["applicationId"], "jobRunId": run_id, "arn": f"arn:fake:{run_id}"}

    def get_job_run(self, applicationId, jobRunId):
        process, stderr = self.runs[jobRunId]
        code = process.poll()
        state = "RUNNING" if code is None else "SUCCESS" if code == 0 else "FAILED"
        self.states.setdefault(jobRunId, []).append(state)
        job_run = {"applicationId": applicationId, "jobRunId": jobRunId, "state": state}
        if state == "FAILED":
            lines = [line for line in stderr.read_text(errors="replace").splitlines() if line.strip()]
            job_run["stateDetails"] = (
                "Job failed, please check complete logs in configured logging destination. "
                f"ExitCode: {code}. Last few exceptions: {lines[-1] if lines else ''}"
            )
        return {"jobRun": job_run}

    def get_dashboard_for_job_run(self, applicationId, jobRunId):
        return {"url": f"http://127.0.0.1/fake-dashboard/{applicationId}/{jobRunId}"}

    def get_application(self, applicationId):
        return {"application": {"applicationId": applicationId, "type": "Spark"}}

    def cancel_job_run(self, applicationId, jobRunId):
        self.runs[jobRunId][0].terminate()
        return {"applicationId": applicationId, "jobRunId": jobRunId}

    def wait(self) -> None:
        for process, _ in self.runs.values():
            process.wait(timeout=60)


def runtime_env(**extra: str) -> dict[str, str]:
    """What the runtime image provides: no AWS credential from the Dagster process. Its Python
    stands in for the venv archive's (`./environment/bin/python` on EMR)."""
    passed = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "JAVA_HOME", "TMPDIR") if k in os.environ}
    return {**passed, "PYSPARK_PYTHON": sys.executable, **extra}


def local_jobs(fake: FakeEMRServerless, message_reader) -> EMRServerlessFeatureJobs:
    """The resource as production binds it, with the fake API and a reader that works here."""

    class LocalEMRServerless(EMRServerlessFeatureJobs):
        def pipes_client(self, storage: StorageRoot) -> PipesEMRServerlessClient:
            return PipesEMRServerlessClient(client=fake, message_reader=message_reader, poll_interval=0.5)

    return LocalEMRServerless(application_id=APPLICATION_ID, execution_role_arn=ROLE_ARN, entry_point=ENTRY_POINT)


@pytest.fixture()
def no_credentials_leave(monkeypatch):
    """AWS credentials in the Dagster process, to show that none reaches a job run."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DAGSTER_SIDE_SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DAGSTER_SIDE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", DAGSTER_SIDE_SECRET)


# ============================================================================================
# The request and the binding (fast)


def test_start_job_run_params_carry_the_job_and_its_environment():
    params = start_job_run_params(
        application_id=APPLICATION_ID,
        execution_role_arn=ROLE_ARN,
        entry_point="s3://bucket/jobs/emr_job.py",
        name="churn instances_modeling 2026-09-07..2026-09-14",
        driver_env=job_driver_env("s3://bucket/churn", 30),
        archives="s3://bucket/jobs/churn_venv.tar.gz#environment",
        spark_submit_parameters=" --conf spark.executor.cores=2 --conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=/opt/py ",
    )
    submit = params.pop("jobDriver")["sparkSubmit"]
    assert params == {
        "applicationId": APPLICATION_ID,
        "executionRoleArn": ROLE_ARN,
        "name": "churn instances_modeling 2026-09-07..2026-09-14",
    }
    assert submit["entryPoint"] == "s3://bucket/jobs/emr_job.py"
    assert submit["sparkSubmitParameters"] == (
        "--conf spark.emr-serverless.driverEnv.CHURN_DATA_ROOT=s3://bucket/churn"
        " --conf spark.emr-serverless.driverEnv.CHURN_LABEL_WINDOW_DAYS=30"
        " --conf spark.emr-serverless.driverEnv.CHURN_SPARK_S3A=1"
        " --conf spark.archives=s3://bucket/jobs/churn_venv.tar.gz#environment"
        " --conf spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=./environment/bin/python"
        " --conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python"
        " --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"
        # the operator's parameters last: spark-submit keeps the last value of a conf
        " --conf spark.executor.cores=2 --conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=/opt/py"
    )
    assert driver_env(submit["sparkSubmitParameters"])["PYSPARK_PYTHON"] == "/opt/py"


def test_start_job_run_params_refuse_what_spark_submit_cannot_carry():
    common = dict(application_id=APPLICATION_ID, execution_role_arn=ROLE_ARN, entry_point="s3://b/e.py", name="n")
    with pytest.raises(ValueError, match="needs '#<folder>'"):
        start_job_run_params(**common, driver_env={}, archives="s3://b/venv.tar.gz")
    with pytest.raises(ValueError, match="CHURN_DATA_ROOT='s3://b/my churn'.*whitespace"):
        start_job_run_params(**common, driver_env=job_driver_env("s3://b/my churn", 30))
    without_archive = start_job_run_params(**common, driver_env={"A": "1"})
    assert without_archive["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"] == "--conf spark.emr-serverless.driverEnv.A=1"


EMR_ENV = {
    "CHURN_EMR_SERVERLESS_APPLICATION_ID": APPLICATION_ID,
    "CHURN_EMR_SERVERLESS_EXECUTION_ROLE_ARN": ROLE_ARN,
    "CHURN_EMR_SERVERLESS_ENTRY_POINT": "s3://bucket/jobs/emr_job.py",
    "CHURN_DATA_ROOT": "s3://bucket/churn",
}


def test_emr_serverless_is_bound_from_the_environment_only_when_an_application_is_set(monkeypatch):
    for name in [*EMR_ENV, "CHURN_EMR_SERVERLESS_ARCHIVES", "CHURN_EMR_SERVERLESS_SPARK_PARAMS"]:
        monkeypatch.delenv(name, raising=False)
    assert not emr_serverless_for_environment().enabled

    for name, value in EMR_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHURN_EMR_SERVERLESS_ARCHIVES", "s3://bucket/jobs/venv.tar.gz#environment")
    bound = emr_serverless_for_environment()
    assert bound.enabled
    # Read when a run starts, like every other setting: the definitions hold the variables' names.
    assert isinstance(bound.application_id, dg.EnvVar)
    assert bound.application_id.env_var_name == "CHURN_EMR_SERVERLESS_APPLICATION_ID"
    assert bound.archives.env_var_name == "CHURN_EMR_SERVERLESS_ARCHIVES" and bound.spark_submit_parameters is None

    monkeypatch.delenv("CHURN_EMR_SERVERLESS_ENTRY_POINT")
    with pytest.raises(ValueError, match="set CHURN_EMR_SERVERLESS_ENTRY_POINT too"):
        emr_serverless_for_environment()
    monkeypatch.setenv("CHURN_EMR_SERVERLESS_ENTRY_POINT", "s3://bucket/jobs/emr_job.py")
    monkeypatch.setenv("CHURN_DATA_ROOT", "/srv/churn")
    with pytest.raises(ValueError, match="needs CHURN_DATA_ROOT in S3"):
        emr_serverless_for_environment()


def test_the_job_refuses_to_run_outside_pipes(tmp_path):
    done = subprocess.run([sys.executable, ENTRY_POINT], env=runtime_env(), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "runs under Dagster Pipes" in done.stderr


# ============================================================================================
# End to end through the fake API (slow: the job starts its own Spark)


@pytest.mark.slow
def test_instances_modeling_runs_as_one_job_and_writes_what_the_in_process_path_writes(
    tmp_path, resources, storage, no_credentials_leave
):
    build_raw(storage.base)
    in_process = dg.materialize([instances_modeling], resources=resources, tags=range_tags(WEEK_A, WEEK_B))
    assert in_process.success

    emr_root = StorageRoot(root=str(tmp_path / "emr_root"))
    build_raw(emr_root.base)
    fake = FakeEMRServerless(tmp_path, runtime_env())
    on_emr = dg.materialize(
        [instances_modeling],
        resources={**resources, "storage": emr_root, "emr_serverless": local_jobs(fake, dg.PipesTempFileMessageReader())},
        tags=range_tags(WEEK_A, WEEK_B),
    )
    fake.wait()
    assert on_emr.success

    # One job run for the range, reported RUNNING then SUCCESS.
    (params,) = fake.started
    (states,) = fake.states.values()
    assert states[0] == "RUNNING" and states[-1] == "SUCCESS"
    # The same files, byte for byte.
    for week in (WEEK_A, WEEK_B):
        relative = f"{INSTANCES_MODELING_DIR}/{week}.csv"
        assert emr_root.read_bytes(relative) == storage.read_bytes(relative)
    assert emr_root.list_names("models/quality/v0/instances_modeling") == [f"{WEEK_A}.json", f"{WEEK_B}.json"]

    # The job's metadata reached Dagster, on each week's materialization: the in-process keys and
    # values, its own time and folder.
    expected, reported = (
        {m.partition: m for m in result.asset_materializations_for_node("instances_modeling")}
        for result in (in_process, on_emr)
    )
    assert sorted(reported) == [WEEK_A, WEEK_B]
    expected, reported = expected[WEEK_A], reported[WEEK_A]
    assert set(expected.metadata) <= set(reported.metadata)
    for key, value in expected.metadata.items():
        if key == "path":
            assert reported.metadata[key] == dg.MetadataValue.path(emr_root.uri(INSTANCES_MODELING_DIR))
        elif key != "seconds":
            assert reported.metadata[key] == value, key
    assert reported.metadata["rows"].value == 4
    assert reported.metadata["AWS EMR Serverless Job Run ID"].value == "job1"

    # The request: our application, role, entry point and driver environment; no credential.
    assert params["applicationId"] == APPLICATION_ID and params["executionRoleArn"] == ROLE_ARN
    assert params["jobDriver"]["sparkSubmit"]["entryPoint"] == ENTRY_POINT
    env = driver_env(params["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"])
    assert set(env) == {"CHURN_DATA_ROOT", "CHURN_LABEL_WINDOW_DAYS", "CHURN_SPARK_S3A", "DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"}
    assert env["CHURN_DATA_ROOT"] == emr_root.root and env["CHURN_SPARK_S3A"] == "1"
    assert env["CHURN_LABEL_WINDOW_DAYS"] == str(SETTINGS.label_window_days)
    assert DAGSTER_SIDE_SECRET not in json.dumps(params)


@pytest.fixture()
def moto(tmp_path):
    server = MotoServer(tmp_path / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_a_contract_violation_in_the_job_fails_the_run_naming_table_partition_and_column(
    tmp_path, resources, moto, no_credentials_leave
):
    """Messages through S3 under the storage root's prefix, as in production: the failed job's
    reason reaches Dagster and becomes the step's failure."""
    root = StorageRoot(root=str(tmp_path / "root"))
    build_raw(root.base)
    bad_schema = pa.schema([("instance", pa.int64()), ("user_id", pa.int64()), ("event_date", pa.date32())])
    write_raw(root.base, RAW_USAGE_EVENTS, [{"instance": 1, "user_id": 1, "event_date": D("2026-09-08")}],
              schema=bad_schema, file_name="part-bad.parquet")

    moto_keys = {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_DEFAULT_REGION": REGION}
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name=REGION,
                      aws_access_key_id="moto", aws_secret_access_key="moto")  # moto accepts any
    s3.create_bucket(Bucket="churn-bucket")
    reader = StorageRootS3MessageReader(bucket="churn-bucket", client=s3, key_prefix=f"team/churn/{PIPES_MESSAGES_DIR}", interval=0.5)
    # The job's S3 writer finds moto through the runtime's standard AWS environment (the execution
    # role's, on EMR).
    fake = FakeEMRServerless(tmp_path, runtime_env(AWS_ENDPOINT_URL=moto.url, **moto_keys))
    result = dg.materialize(
        [instances_w1],
        resources={**resources, "storage": root, "emr_serverless": local_jobs(fake, reader)},
        partition_key=WEEK_A,
        raise_on_error=False,
    )
    fake.wait()
    assert not result.success
    assert fake.states["job1"][-1] == "FAILED"
    (failure,) = result.get_step_failure_events()
    # As in process (tests/test_feature_tables.py): the table, the partition, the column.
    message = failure.event_specific_data.error.message
    assert message.startswith("dagster._core.definitions.events.Failure: instances_w1: raw/usage_events partition week=2026-09-07")
    assert "column 'event_type' is missing" in message
    assert failure.event_specific_data.error.cause.message.startswith("RuntimeError: EMR Serverless job failed")
    chunks = [item["Key"] for item in s3.list_objects_v2(Bucket="churn-bucket").get("Contents", [])]
    assert chunks and all(key.startswith(f"team/churn/{PIPES_MESSAGES_DIR}/") for key in chunks)
    assert DAGSTER_SIDE_SECRET not in json.dumps(fake.started)
