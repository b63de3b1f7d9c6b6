"""The storage root in S3: a real S3-protocol server (moto, its own process) on loopback.

Requests go through a proxy that can answer 500s for a while or drop every connection, so the
retries and the failure path run against real HTTP, as they would against S3.
"""

from __future__ import annotations

import uuid
from datetime import date

import boto3
import dagster as dg
import pyarrow as pa
import pytest

from churn_assets.contract import (
    CHURN_MODEL_DIR,
    EVALUATION_DIR,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_DIR,
    PREDICTIONS_DIR,
    PREPROCESSOR_DIR,
    RAW_INSTANCES,
)
from churn_assets.raw_tables import ContractViolation, find_partitions
from churn_assets.settings import SETTINGS
from resources.storage import StorageError, StorageRoot
from tests import rawdata
from tests.s3server import FaultyProxy, MotoServer

AS_OF = date(2026, 12, 3)
REGION = "us-east-1"


class S3:
    def __init__(self, moto: MotoServer, proxy: FaultyProxy):
        self.moto, self.proxy = moto, proxy
        # Straight to the server, past the proxy: what is really stored.
        self.client = boto3.client(
            "s3", endpoint_url=moto.url, region_name=REGION,
            aws_access_key_id="moto", aws_secret_access_key="moto",  # moto accepts any: no real credentials
        )

    def new_bucket(self) -> str:
        name = f"churn-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = self.client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server in its own process, the proxy in front, the AWS environment pointing at it."""
    moto = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    try:
        with FaultyProxy(moto.port) as proxy, pytest.MonkeyPatch.context() as env:
            # Only the standard AWS environment says where S3 is: nothing in code or config.
            env.setenv("AWS_ENDPOINT_URL", proxy.url)
            env.setenv("AWS_ACCESS_KEY_ID", "moto")
            env.setenv("AWS_SECRET_ACCESS_KEY", "moto")
            env.setenv("AWS_DEFAULT_REGION", REGION)
            env.delenv("AWS_PROFILE", raising=False)
            yield S3(moto, proxy)
    finally:
        moto.stop()


@pytest.fixture()
def root(s3) -> StorageRoot:
    s3.proxy.reset()
    return StorageRoot(root=f"s3://{s3.new_bucket()}/team/churn", s3_max_attempts=3)


def test_storage_root_reads_writes_and_lists_objects(root, s3):
    bucket = root.root.split("/")[2]
    assert root.write_text("models/x/v0/a.csv", "instance\n1\n") == f"s3://{bucket}/team/churn/models/x/v0/a.csv"
    root.write_text("models/x/v0/.a.csv.tmp", "hidden")
    root.write_text("models/x/v0/sub/b.json", "{}")
    assert root.read_text("models/x/v0/a.csv") == "instance\n1\n"
    assert root.list_names("models/x/v0") == ["a.csv", "sub"]
    assert root.list_names("models/nothing") == []
    assert root.exists("models/x/v0/a.csv") and root.exists("models/x/v0") and not root.exists("models/y")
    assert root.read_csv("models/x/v0/a.csv")["instance"].tolist() == [1]
    root.append_line("alerts/alerts.jsonl", '{"n": 1}')
    root.append_line("alerts/alerts.jsonl", '{"n": 2}\n')
    assert root.read_text("alerts/alerts.jsonl") == '{"n": 1}\n{"n": 2}\n'
    root.delete("models/x/v0/a.csv")
    assert not root.exists("models/x/v0/a.csv")
    assert set(s3.keys(bucket)) == {
        "team/churn/models/x/v0/.a.csv.tmp", "team/churn/models/x/v0/sub/b.json", "team/churn/alerts/alerts.jsonl",
    }
    with pytest.raises(StorageError, match="is in S3: read it with read_bytes or local_path"):
        root.path("models/x/v0/sub/b.json")


def test_staged_copies_follow_the_objects(root):
    root.write_text("raw/t/week=2026-06-01/part-0.parquet", "one")
    root.write_text("raw/t/week=2026-06-01/part-1.parquet", "two")
    folder = root.local_folder("raw/t/week=2026-06-01")
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet", "part-1.parquet"]
    root.write_text("raw/t/week=2026-06-01/part-0.parquet", "one, rewritten")
    root.delete("raw/t/week=2026-06-01/part-1.parquet")
    folder = root.local_folder("raw/t/week=2026-06-01")
    assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]
    assert (folder / "part-0.parquet").read_text() == "one, rewritten"


def test_upload_folder_replaces_a_folders_previous_files(root, tmp_path):
    (tmp_path / "raw/t/week=2026-06-01").mkdir(parents=True)
    (tmp_path / "raw/t/week=2026-06-01/part-0.parquet").write_text("new")
    root.write_text("raw/t/week=2026-06-01/part-7.parquet", "from an older run")
    root.upload_folder(tmp_path)
    assert root.list_names("raw/t/week=2026-06-01") == ["part-0.parquet"]


def test_transient_500s_are_retried(root, s3):
    s3.proxy.fail_next(2)  # fewer than the 3 attempts of this root
    root.write_text("models/x/v0/a.csv", "instance\n")
    assert s3.proxy.served_500 == 2
    assert root.read_text("models/x/v0/a.csv") == "instance\n"


def test_a_server_gone_away_fails_naming_the_operation_and_the_key(root, s3):
    s3.proxy.stop_when(lambda method, path: method == "PUT")
    with pytest.raises(StorageError, match=r"S3 put_object s3://churn-\w+/team/churn/models/x/v0/a.csv failed after 3 attempt\(s\)"):
        root.write_text("models/x/v0/a.csv", "instance\n")
    bucket = root.root.split("/")[2]
    assert s3.keys(bucket) == {}  # nothing under the final key, nothing anywhere


def test_a_bad_raw_partition_in_s3_names_table_partition_and_column(root, tmp_path):
    bad = pa.schema([("instance", pa.string()), ("eval_start_date", pa.date32()), ("product", pa.string()),
                     ("region", pa.string())])
    rawdata.write_raw(tmp_path, RAW_INSTANCES,
                      [{"instance": "x1", "eval_start_date": date(2026, 6, 2), "product": "p", "region": "r"}], bad)
    root.upload_folder(tmp_path)
    with pytest.raises(ContractViolation, match=r"raw/instances partition week=2026-06-01 file part-0.parquet: "
                                                r"column 'instance' has type string, the contract says bigint"):
        find_partitions(root, RAW_INSTANCES, None)


# --- the whole graph -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_on_s3(s3, spark):
    """The simulator writing into s3://, then the whole graph materialized there (as `make demo`)."""
    from churn_assets.demo import run_demo
    from churn_assets.simulator import simulate

    s3.proxy.reset()
    bucket = s3.new_bucket()
    root = f"s3://{bucket}/prod"
    simulate(root, instances=3000, weeks=6, as_of=AS_OF, seed=11)
    # A burst of 500s when the model is stored, and another on the first prediction: retried.
    s3.proxy.fail_next(3, when=lambda method, path: method == "PUT" and "/churn_model/" in path)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_ENV", "test")
        env.setenv("CHURN_DATA_ROOT", root)
        env.delenv("DAGSTER_HOME", raising=False)
        assert run_demo(root, as_of=AS_OF) == 0
    return bucket, s3.proxy.served_500


@pytest.mark.slow
def test_whole_graph_on_s3_writes_every_output_in_the_contracts_layout(graph_on_s3, s3, tmp_path, monkeypatch):
    bucket, served_500 = graph_on_s3
    assert served_500 == 3
    keys = {key.removeprefix("prod/") for key in s3.keys(bucket, "prod/")}
    storage = StorageRoot(root=f"s3://{bucket}/prod")
    weeks = lambda folder: sorted(k.rsplit("/", 1)[1].removesuffix(".csv") for k in keys if k.startswith(folder + "/"))  # noqa: E731
    for table in ("raw/instances", "raw/usage_events", "raw/conversions"):
        assert any(k.startswith(f"{table}/week=") and k.endswith(".parquet") for k in keys), table
    modeling, scoring = weeks(INSTANCES_MODELING_DIR), weeks(INSTANCES_W1_DIR)
    assert len(modeling) >= 6 and set(modeling) < set(scoring)
    model_week = modeling[-1]
    for name in ("model.ubj", "preprocessor.json", "card.json", "converter_reference.json", "promotion.json"):
        assert f"{CHURN_MODEL_DIR}/{model_week}/{name}" in keys, name
    assert f"{PREPROCESSOR_DIR}/{model_week}.json" in keys
    assert f"{EVALUATION_DIR}/{model_week}.json" in keys
    scored = weeks(PREDICTIONS_DIR)
    assert scored == [w for w in scoring if w > model_week]
    for week in scored:
        predictions = storage.read_csv(f"{PREDICTIONS_DIR}/{week}.csv", dtype={"eval_start_date": str})
        features = storage.read_csv(f"{INSTANCES_W1_DIR}/{week}.csv", dtype={"eval_start_date": str})
        assert predictions["instance"].tolist() == features["instance"].tolist()
        assert predictions["retain_probability"].between(0, 1).all()
    assert not any(k.endswith(".tmp") for k in keys)
    # Dagster's own IO lives beside the data, through dagster-aws (nothing passes between these
    # assets today, so the prefix may be empty), and nothing was written to a local ./data.
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_a_server_gone_mid_run_fails_clearly_and_leaves_no_partial_output(graph_on_s3, s3, spark):
    """The server stops answering after two tables files: the run fails, what is there is whole."""
    from churn_assets.assets.tables import instances_modeling
    from resources import resources_for_environment

    done_bucket, _ = graph_on_s3
    s3.proxy.reset()
    bucket = s3.new_bucket()
    for key, body in s3.keys(done_bucket, "prod/raw/").items():
        s3.client.put_object(Bucket=bucket, Key=key, Body=body)
    puts = []

    def third_table_put(method: str, path: str) -> bool:
        if method == "PUT" and "/instances_modeling/" in path:
            puts.append(path)
        return len(puts) > 2

    s3.proxy.stop_when(third_table_put)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_ENV", "test")
        env.setenv("CHURN_DATA_ROOT", f"s3://{bucket}/prod")
        resources = resources_for_environment()
        resources["storage"] = StorageRoot(root=f"s3://{bucket}/prod", s3_max_attempts=2)
        written_weeks = sorted(k.split("/")[-1].removesuffix(".csv") for k in s3.keys(done_bucket, f"prod/{INSTANCES_MODELING_DIR}/"))
        result = dg.materialize(
            [instances_modeling], resources=resources, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": written_weeks[0],
                  "dagster/asset_partition_range_end": written_weeks[-1]},
        )
    assert not result.success
    # The first try fails on the third table PUT; Dagster re-runs the step (the assets' retry
    # policy), which fails at its first request to the server that is gone; then the run stops.
    [first, *retried] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    message = first.event_specific_data.error.to_string()  # the step's error and its causes
    assert f"S3 put_object s3://{bucket}/prod/{INSTANCES_MODELING_DIR}/" in message and "failed after 2 attempt(s)" in message
    assert len(retried) == SETTINGS.step_retries - 1
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert f"S3 list_objects_v2 s3://{bucket}/prod/raw/" in failure.step_failure_data.error.to_string()
    # Every table file under a final key is whole: byte for byte what the complete run wrote.
    reference = s3.keys(done_bucket, f"prod/{INSTANCES_MODELING_DIR}/")
    landed = s3.keys(bucket, f"prod/{INSTANCES_MODELING_DIR}/")
    assert len(landed) == 2
    for key, body in landed.items():
        assert body == reference[key], key
    assert not s3.keys(bucket, f"prod/{CHURN_MODEL_DIR}/")
