"""athena_tables: the output tables registered as external tables, so analysts query them in SQL.

The talk made its tables queryable through Athena with external-table DDL over the S3 folders
(`sql/ddl/*.sql`, templated by schema and location). One DDL file per table, run by whichever
engine holds the catalog:
- prod (CHURN_ENV=prod): Athena, through dagster-aws's `AthenaClientResource`; the workgroup
  (CHURN_ATHENA_WORKGROUP) and, optionally, the result location (CHURN_ATHENA_OUTPUT_LOCATION)
  come from the environment, credentials from the standard AWS chain, never from code;
- local and test: the same statements in Spark SQL, whose Hive catalog (resources/spark.py)
  accepts them as written, over the local storage root.
`resources_for_environment` binds the `catalog` resource to one or the other.

Not partitioned, on purpose: each output is one CSV per cohort week in ONE folder, and a table
over the folder reads every file in it, so a week written tomorrow is in the table tomorrow with
no partition to add (a Hive-partitioned table would need `week=...` folders and an
`ALTER TABLE ADD PARTITION` or `MSCK REPAIR` after every run). So the asset runs once, and again
only when a DDL or the storage root changes; re-running it is harmless: each file drops and
re-creates its table (external: dropping it never deletes the data) and replaces its view.
"""
# No `from __future__ import annotations` in asset modules: Dagster reads the context annotation.

import time
from collections.abc import Sequence
from typing import Optional

import dagster as dg
from dagster_aws.athena import AthenaClientResource, AthenaError, AthenaTimeout
from dagster_pyspark import LazyPySparkResource

from churn_assets.assets.ml import predictions
from churn_assets.assets.raw import OWNER
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import INSTANCES_MODELING_DIR, INSTANCES_W1_DIR, PREDICTIONS_DIR
from churn_assets.features import read_sql_statements
from churn_assets.settings import SETTINGS
from resources.storage import StorageRoot

DEFAULT_DATABASE = "churn"
# table -> (DDL file under sql/, output folder under the storage root)
CATALOG_TABLES: dict[str, tuple[str, str]] = {
    "instances_modeling": ("ddl/instances_modeling.sql", INSTANCES_MODELING_DIR),
    "instances_w1": ("ddl/instances_w1.sql", INSTANCES_W1_DIR),
    "predictions": ("ddl/predictions.sql", PREDICTIONS_DIR),
}
# Spark SQL reads CSV header lines as rows: query `{table}_rows` (the same rows in Athena).
ROWS_VIEW_SUFFIX = "_rows"


def table_location(storage: StorageRoot, folder: str) -> str:
    """The folder's address with a trailing slash (Athena wants a folder, not an object prefix)."""
    return storage.uri(folder).rstrip("/") + "/"


def catalog_statements(database: str, storage: StorageRoot) -> dict[str, list[str]]:
    """Each table's DDL statements, templated with the database and its folder's location."""
    return {
        table: read_sql_statements(ddl, marketing_schema=database, location=table_location(storage, folder))
        for table, (ddl, folder) in CATALOG_TABLES.items()
    }


class TableCatalog(dg.ConfigurableResource):
    """Where the external tables are registered: `run_ddl` runs statements one at a time, in order."""

    database: str = DEFAULT_DATABASE

    @property
    def engine(self) -> str:
        raise NotImplementedError

    def run_ddl(self, statements: Sequence[str]) -> None:
        raise NotImplementedError


class SparkTableCatalog(TableCatalog):
    """Spark SQL's Hive catalog (local and test)."""

    spark: LazyPySparkResource

    @property
    def engine(self) -> str:
        return "spark"

    def run_ddl(self, statements: Sequence[str]) -> None:
        session = self.spark.spark_session
        for statement in statements:
            session.sql(statement)


class AthenaTableCatalog(TableCatalog):
    """AWS Athena (prod): each statement is one query execution, waited for before the next."""

    athena: AthenaClientResource
    output_location: Optional[str] = None  # None: the workgroup's own query result location

    @property
    def engine(self) -> str:
        return "athena"

    def run_ddl(self, statements: Sequence[str]) -> None:
        client = self.athena.get_client()
        for statement in statements:
            request = {"QueryString": statement, "WorkGroup": client.workgroup}
            if self.output_location:
                request["ResultConfiguration"] = {"OutputLocation": self.output_location}
            execution_id = client.client.start_query_execution(**request)["QueryExecutionId"]
            self._wait(client, execution_id, statement)

    @staticmethod
    def _wait(client, execution_id: str, statement: str) -> None:
        what = " ".join(statement.split())[:80]
        for attempt in range(client.max_polls):
            status = client.client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state not in ("QUEUED", "RUNNING"):
                raise AthenaError(
                    f"Athena query {execution_id} {state}: {status.get('StateChangeReason', 'no reason given')} "
                    f"(statement: {what} ...)"
                )
            if attempt + 1 < client.max_polls:
                time.sleep(client.polling_interval)
        raise AthenaTimeout(
            f"Athena query {execution_id} still {state} after {client.max_polls} polls (statement: {what} ...)"
        )


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
    deps=[instances_modeling, instances_w1, predictions],
    group_name="catalog",
    kinds={"athena", "spark", "sql"},
    owners=[OWNER],
    description=(
        "The output tables instances_modeling, instances_w1 and predictions registered as external "
        "tables over their folders (the talk's DDL, sql/ddl/), in Athena in prod and in Spark SQL "
        "locally, each with a `<table>_rows` view without the CSV header lines. Not partitioned: a "
        "table reads every cohort-week file in its folder, so new weeks need no re-run. Idempotent."
    ),
)
def athena_tables(context: dg.AssetExecutionContext, catalog: TableCatalog, storage: StorageRoot) -> dg.MaterializeResult:
    statements = catalog_statements(catalog.database, storage)
    for table, table_statements in statements.items():
        catalog.run_ddl(table_statements)
        context.log.info(f"{catalog.engine}: registered {catalog.database}.{table} ({len(table_statements)} statements)")
    empty = [table for table, (_, folder) in CATALOG_TABLES.items() if not storage.list_names(folder)]
    if empty:
        context.log.warning(f"registered over folders with no files yet (the tables read as empty): {empty}")
    return dg.MaterializeResult(
        metadata={
            "engine": catalog.engine,
            "database": catalog.database,
            "tables": {
                f"{catalog.database}.{table}": table_location(storage, folder)
                for table, (_, folder) in CATALOG_TABLES.items()
            },
            "views": [f"{catalog.database}.{table}{ROWS_VIEW_SUFFIX}" for table in CATALOG_TABLES],
            "statements": sum(len(s) for s in statements.values()),
            "empty_tables": empty or "none",
        }
    )
