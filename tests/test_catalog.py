"""athena_tables: the talk's external-table DDL for the three output tables, in Spark SQL locally
and through Athena in prod (with a fake Athena client: nothing here calls AWS)."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster_aws.athena import AthenaClient, AthenaClientResource, AthenaError

from churn_assets.assets.catalog import (
    CATALOG_TABLES,
    AthenaTableCatalog,
    SparkTableCatalog,
    athena_tables,
    catalog_statements,
)
from churn_assets.contract import (
    FEATURE_COLUMNS,
    INSTANCES_MODELING_COLUMNS,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_COLUMNS,
    INSTANCES_W1_DIR,
    PREDICTIONS_DIR,
)
from churn_assets.features import FeatureTable, write_weekly_csv
from churn_assets.ml.explain import converter_reference
from churn_assets.ml.model import TALK_XGB_PARAMS, train_churn_model
from churn_assets.ml.scoring import EXPLAINED_PREDICTION_COLUMNS, score_with_reasons
from churn_assets.registry import write_predictions
from resources import resources_for_environment

WEEKS = ("2026-09-07", "2026-09-14")
DATABASE = "churn_catalog_test"


def feature_rows(weeks, rows_per_week: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = rows_per_week * len(weeks)
    frame = pd.DataFrame(rng.poisson(3.0, (rows, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    logit = 0.5 * frame["number_of_issues"] + 0.3 * frame["w1_agg_active_users"] - 3.5
    frame["retained"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    frame["instance"] = np.arange(rows, dtype=np.int64) + 3_000_000_000 + seed * rows  # beyond INT
    frame["eval_start_date"] = [
        str(date.fromisoformat(weeks[i // rows_per_week]) + timedelta(days=int(rng.integers(0, 7))))
        for i in range(rows)
    ]
    return frame


def write_outputs(storage, weeks=WEEKS, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The three tables as the assets write them (their writers), on a small simulated set."""
    frame = feature_rows(weeks, 60, seed)
    modeling = frame[list(INSTANCES_MODELING_COLUMNS)]
    w1 = frame[list(INSTANCES_W1_COLUMNS)]
    write_weekly_csv(storage, FeatureTable("instances_modeling", list(weeks), modeling, pd.DataFrame()))
    write_weekly_csv(storage, FeatureTable("instances_w1", list(weeks), w1, pd.DataFrame()))
    model = train_churn_model(modeling, "v", {**TALK_XGB_PARAMS, "n_estimators": 10, "n_jobs": 1}, threshold_folds=None)
    scored = []
    for week in weeks:
        rows = w1[pd.to_datetime(w1["eval_start_date"]) < pd.Timestamp(week) + pd.Timedelta(days=7)]
        rows = rows[pd.to_datetime(rows["eval_start_date"]) >= pd.Timestamp(week)]
        week_scored = score_with_reasons(
            rows, model.preprocessor, model.classifier, model.threshold, f"{week}-0123abcd",
            converter_reference(modeling),
        )
        write_predictions(storage, week, week_scored)
        scored.append(week_scored)
    return {"instances_modeling": modeling, "instances_w1": w1, "predictions": pd.concat(scored, ignore_index=True)}


def read_written(storage, folder: str) -> pd.DataFrame:
    frames = [
        storage.read_csv(f"{folder}/{name}", dtype={"eval_start_date": str, "model_version": str})
        for name in storage.list_names(folder)
    ]
    return pd.concat(frames, ignore_index=True)


def same_rows(read_back: pd.DataFrame, written: pd.DataFrame) -> None:
    text = [c for c in ("model_version", "segment", "top_reasons") if c in written]
    written = written.copy()
    written[text] = written[text].fillna("")  # an empty CSV field: NaN to pandas, '' to the serde
    key = ["instance"]
    pd.testing.assert_frame_equal(
        read_back.sort_values(key).reset_index(drop=True),
        written.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


def test_the_ddl_declares_the_contracts_columns_in_order():
    expected = {
        "instances_modeling": INSTANCES_MODELING_COLUMNS,
        "instances_w1": INSTANCES_W1_COLUMNS,
        "predictions": EXPLAINED_PREDICTION_COLUMNS,
    }
    folders = {"instances_modeling": INSTANCES_MODELING_DIR, "instances_w1": INSTANCES_W1_DIR,
               "predictions": PREDICTIONS_DIR}
    assert {table: folder for table, (_, folder) in CATALOG_TABLES.items()} == folders
    from resources.storage import StorageRoot

    statements = catalog_statements("analytics", StorageRoot(root="/data/churn"))
    for table, columns in expected.items():
        create = next(s for s in statements[table] if s.startswith("CREATE EXTERNAL TABLE"))
        body = create[create.index("(") + 1 : create.index("\n)")]
        declared = [line.strip(" ,").split()[0] for line in body.strip().splitlines()]
        assert declared == list(columns), table
        assert f"LOCATION '/data/churn/{folders[table]}/'" in create
        assert statements[table][0] == "CREATE DATABASE IF NOT EXISTS analytics"
        assert statements[table][1] == f"DROP TABLE IF EXISTS analytics.{table}"


@pytest.mark.slow
def test_each_table_reads_exactly_the_rows_written_and_registering_is_idempotent(resources, storage, spark):
    written = write_outputs(storage)
    resources = {**resources, "catalog": SparkTableCatalog(database=DATABASE, spark=resources["spark"])}

    for _ in range(2):  # idempotent: the second run replaces the tables and views, no error
        result = dg.materialize([athena_tables], resources=resources)
        assert result.success
    [materialization] = result.asset_materializations_for_node("athena_tables")
    assert materialization.metadata["engine"].value == "spark"
    assert materialization.metadata["empty_tables"].value == "none"
    assert sorted(t.name for t in spark.catalog.listTables(DATABASE)) == sorted(
        [*CATALOG_TABLES, *(f"{t}_rows" for t in CATALOG_TABLES)]
    )

    for table, (_, folder) in CATALOG_TABLES.items():
        read_back = spark.sql(f"SELECT * FROM {DATABASE}.{table}_rows").toPandas()
        assert list(read_back.columns) == list(written[table].columns), table
        same_rows(read_back, read_written(storage, folder))
    predictions = spark.sql(f"SELECT * FROM {DATABASE}.predictions_rows").toPandas()
    assert predictions["top_reasons"].str.contains(",").any()  # quoted fields survived whole
    assert predictions["instance"].min() > 2**31  # int64 instances, not truncated to INT

    # Not partitioned: a week written after registration is in the table with no re-run.
    write_weekly_csv(storage, FeatureTable("instances_w1", ["2026-09-21"],
                                           feature_rows(["2026-09-21"], 5, seed=9)[list(INSTANCES_W1_COLUMNS)],
                                           pd.DataFrame()))
    spark.catalog.refreshTable(f"{DATABASE}.instances_w1")  # Spark caches file listings; Athena lists per query
    assert spark.sql(f"SELECT COUNT(*) FROM {DATABASE}.instances_w1_rows").first()[0] == len(written["instances_w1"]) + 5


class FakeAthena:
    """boto3's Athena client as far as the asset uses it: start a query, poll its state."""

    def __init__(self, states=("QUEUED", "RUNNING", "SUCCEEDED"), reason: str = ""):
        self.requests: list[dict] = []
        self.states, self.reason = states, reason
        self.polls: dict[str, int] = {}

    def start_query_execution(self, **request):
        self.requests.append(request)
        execution_id = f"query-{len(self.requests)}"
        self.polls[execution_id] = 0
        return {"QueryExecutionId": execution_id}

    def get_query_execution(self, QueryExecutionId):
        state = self.states[min(self.polls[QueryExecutionId], len(self.states) - 1)]
        self.polls[QueryExecutionId] += 1
        return {"QueryExecution": {"Status": {"State": state, "StateChangeReason": self.reason}}}


@pytest.fixture()
def fake_athena(monkeypatch):
    fake = FakeAthena()

    def get_client(self):
        return AthenaClient(client=fake, workgroup=self.workgroup, polling_interval=0, max_polls=5)

    monkeypatch.setattr(AthenaClientResource, "get_client", get_client)
    return fake


def test_prod_runs_the_same_statements_through_athena(fake_athena, storage):
    catalog = AthenaTableCatalog(
        database="marketing",
        athena=AthenaClientResource(workgroup="analytics"),
        output_location="s3://query-results/churn/",
    )
    result = dg.materialize([athena_tables], resources={"catalog": catalog, "storage": storage})

    assert result.success
    expected = [s for statements in catalog_statements("marketing", storage).values() for s in statements]
    assert [r["QueryString"] for r in fake_athena.requests] == expected  # one execution each, in order
    assert all(r["WorkGroup"] == "analytics" for r in fake_athena.requests)
    assert all(r["ResultConfiguration"] == {"OutputLocation": "s3://query-results/churn/"} for r in fake_athena.requests)
    assert set(fake_athena.polls.values()) == {3}  # each waited for (QUEUED, RUNNING, SUCCEEDED)
    queries = [r["QueryString"] for r in fake_athena.requests]
    assert queries[0] == "CREATE DATABASE IF NOT EXISTS marketing"
    assert "DROP TABLE IF EXISTS marketing.predictions" in queries
    create = next(q for q in queries if q.startswith("CREATE EXTERNAL TABLE marketing.predictions"))
    assert f"LOCATION '{storage.uri(PREDICTIONS_DIR)}/'" in create and "OpenCSVSerde" in create
    [materialization] = result.asset_materializations_for_node("athena_tables")
    assert materialization.metadata["engine"].value == "athena"
    # No output location configured: the workgroup's own result location is used.
    AthenaTableCatalog(database="m", athena=AthenaClientResource()).run_ddl(["SELECT 1"])
    assert fake_athena.requests[-1] == {"QueryString": "SELECT 1", "WorkGroup": "primary"}


def test_a_failed_athena_statement_fails_naming_it(fake_athena):
    fake_athena.states, fake_athena.reason = ("RUNNING", "FAILED"), "line 1:8: mismatched input"
    catalog = AthenaTableCatalog(database="m", athena=AthenaClientResource())
    with pytest.raises(AthenaError, match="FAILED: line 1:8: mismatched input .*DROP TABLE IF EXISTS m.x"):
        catalog.run_ddl(["DROP TABLE IF EXISTS m.x", "never run"])
    assert len(fake_athena.requests) == 1


def test_each_environment_binds_its_catalog(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("CHURN_CATALOG_DATABASE", "marketing")
    local = resources_for_environment("test")["catalog"]
    assert isinstance(local, SparkTableCatalog) and local.database == "marketing"
    monkeypatch.setenv("CHURN_ATHENA_WORKGROUP", "analytics")
    monkeypatch.delenv("CHURN_ATHENA_OUTPUT_LOCATION", raising=False)
    prod = resources_for_environment("prod")["catalog"]
    assert isinstance(prod, AthenaTableCatalog) and prod.output_location is None
    assert prod.athena.workgroup == dg.EnvVar("CHURN_ATHENA_WORKGROUP")  # read at run time, not in code
    assert prod.athena.aws_access_key_id is None and prod.athena.aws_secret_access_key is None
