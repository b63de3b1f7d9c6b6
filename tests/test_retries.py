"""Step retries: every asset carries the settings' policy; a transient storage failure is retried,
bad input is not."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS, INSTANCES_MODELING_DIR
from churn_assets.settings import PipelineSettings
from resources.storage import LocalFiles, StorageError

WEEK = "2026-09-07"


def test_settings_read_the_retry_policy_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHURN_STEP_RETRIES", "4")
    monkeypatch.setenv("CHURN_STEP_RETRY_DELAY_SECONDS", "2.5")
    policy = PipelineSettings.from_env().step_retry_policy()
    assert (policy.max_retries, policy.delay) == (4, 2.5)
    assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
    monkeypatch.delenv("CHURN_STEP_RETRIES")
    monkeypatch.delenv("CHURN_STEP_RETRY_DELAY_SECONDS")
    assert PipelineSettings.from_env().step_retry_policy().max_retries == 2


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHURN_STEP_RETRIES", "two", "CHURN_STEP_RETRIES='two' is not a number"),
        ("CHURN_STEP_RETRIES", "-1", "CHURN_STEP_RETRIES='-1' must be at least 0"),
        ("CHURN_STEP_RETRY_DELAY_SECONDS", "-5", "CHURN_STEP_RETRY_DELAY_SECONDS='-5' must be at least 0"),
    ],
)
def test_bad_retry_settings_are_refused_by_name(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as error:
        PipelineSettings.from_env()
    assert str(error.value) == message


def test_every_materializing_asset_retries_its_steps():
    from churn_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    materializable = [key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable]
    assert len(materializable) == 8
    for key in materializable:
        policy = graph.assets_def_for_key(key).op.retry_policy
        assert policy is not None and policy.max_retries >= 1, key.to_user_string()


def training_week(rows: int = 40) -> pd.DataFrame:
    generator = np.random.default_rng(7)
    frame = pd.DataFrame(generator.integers(0, 20, size=(rows, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    frame.insert(0, "instance", np.arange(1, rows + 1))
    frame.insert(1, "eval_start_date", WEEK)
    frame.insert(2, "retained", np.arange(rows) % 3 == 0)
    frame["retained"] = frame["retained"].astype(int)
    return frame[list(INSTANCES_MODELING_COLUMNS)]


def test_a_transient_storage_failure_is_retried_and_the_step_succeeds(storage, monkeypatch):
    """The first write of the step fails as an S3 outage would; Dagster re-runs the step."""
    from churn_assets.assets.ml import preprocessor

    storage.write_csv(f"{INSTANCES_MODELING_DIR}/{WEEK}.csv", training_week())
    original, failures = LocalFiles.write_bytes, []

    def fail_once(self, relative, data):
        if not failures:
            failures.append(relative)
            raise StorageError(f"S3 put_object s3://bucket/{relative} failed after 5 attempt(s): 503 Slow Down")
        return original(self, relative, data)

    monkeypatch.setattr(LocalFiles, "write_bytes", fail_once)
    result = dg.materialize([preprocessor], resources={"storage": storage}, partition_key=WEEK)
    assert result.success
    assert failures == [f"models/preprocessor/v0/{WEEK}.json"]
    kinds = [event.event_type for event in result.all_events]
    assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert storage.exists(f"models/preprocessor/v0/{WEEK}.json")


def test_bad_input_fails_at_once_without_retries(storage, resources):
    """A contract violation would fail the same way again: no retry."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from churn_assets.assets.tables import instances_w1

    folder = storage.base / "raw/instances" / f"week={WEEK}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"instance": [1], "product": ["jira-software"], "region": ["emea"]}), folder / "part-0.parquet")
    result = dg.materialize([instances_w1], resources=resources, partition_key=WEEK, raise_on_error=False)
    assert not result.success
    kinds = [event.event_type for event in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "raw/instances partition week=2026-09-07" in failure.step_failure_data.error.message
    assert "'eval_start_date' is missing" in failure.step_failure_data.error.message
