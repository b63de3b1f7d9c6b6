"""The feature query on DuckDB and on Spark, over the very same Parquet files (benchmark only).

DuckDB is a reference for the benchmark, never a runtime dependency of the platform: it is
installed by the `bench` extra only. The queries in bench/duckdb/ are line-for-line translations
of sql/w1_features.sql, sql/instances_modeling.sql and sql/instances_w1.sql (the differences are
listed in their headers).

Which files: the pipeline's own `register_raw_views` decides (the same partition pruning and
footer validation as a real run). `record_partitions` runs it once with a recording wrapper
around `register_view`, and both engines then read exactly the recorded partitions. Footer
validation is outside both timings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from churn_assets import features as pipeline_features
from churn_assets.contract import RAW_SCHEMAS
from churn_assets.features import read_sql
from churn_assets.raw_tables import RawPartitions, register_view

DUCKDB_SQL = Path(__file__).resolve().parent / "duckdb"
DUCKDB_TYPES = {"bigint": "BIGINT", "int": "INTEGER", "date": "DATE", "string": "VARCHAR"}


@dataclass
class FeatureQuery:
    """One feature table over a range of cohort weeks, and the raw partitions it reads."""

    table: str  # instances_modeling | instances_w1
    first_week: date
    last_week: date
    label_window_days: int
    partitions: list[tuple[str, RawPartitions]]  # (view name, partitions)

    @property
    def bounds(self) -> dict[str, str]:
        return {"first_day": self.first_week.isoformat(), "end_day": (self.last_week + timedelta(days=7)).isoformat()}


def record_partitions(spark, storage, table: str, first_week: date, last_week: date, label_window_days: int) -> FeatureQuery:
    """The raw partitions the pipeline registers for `table` over the weeks (validated once)."""
    recorded: list[tuple[str, RawPartitions]] = []
    original = pipeline_features.register_view

    def recording(spark_, storage_, partitions, view):
        recorded.append((view, partitions))
        return original(spark_, storage_, partitions, view)

    pipeline_features.register_view = recording
    try:
        labelled = table == "instances_modeling"
        pipeline_features.register_raw_views(spark, storage, first_week, last_week, label_window_days if labelled else None)
    finally:
        pipeline_features.register_view = original
    return FeatureQuery(table, first_week, last_week, label_window_days, recorded)


def run_spark(spark, storage, query: FeatureQuery) -> pd.DataFrame:
    """The pipeline's feature SQL on Spark: register the views, w1_features, the table, toPandas."""
    for view, partitions in query.partitions:
        register_view(spark, storage, partitions, view)
    register_w1(spark, query.first_week, query.last_week)
    return spark.sql(read_sql(f"{query.table}.sql", label_window_days=query.label_window_days)).toPandas()


def register_w1(spark, first_week: date, last_week: date) -> None:
    """The pipeline's week-1 views (w1_cohort, w1_events, w1_features, or w1_features alone in
    older versions of features.py), exactly as compute_feature_table registers them."""
    if hasattr(pipeline_features, "register_w1_views"):
        pipeline_features.register_w1_views(spark, first_week, last_week)
    else:
        bounds = {"first_day": first_week.isoformat(), "end_day": (last_week + timedelta(days=7)).isoformat()}
        spark.sql(read_sql("w1_features.sql", **bounds)).createOrReplaceTempView("w1_features")


def _parquet_files(folder: str) -> list[str]:
    return sorted(
        str(Path(folder) / n)
        for n in os.listdir(folder)
        if not n.startswith((".", "_")) and not n.endswith((".crc", ".tmp"))
    )


def duckdb_connection(threads: int | None = None):
    import duckdb

    connection = duckdb.connect(":memory:")
    connection.execute(f"SET threads = {int(threads or os.cpu_count() or 2)}")
    return connection


def run_duckdb(connection, query: FeatureQuery) -> pd.DataFrame:
    """The same query on DuckDB: views over the same files with the contract's types, then the SQL."""
    for view, partitions in query.partitions:
        columns = RAW_SCHEMAS[partitions.table]
        files = [f for folder in partitions.present.values() for f in _parquet_files(folder)]
        if files:
            select = ", ".join(f"CAST({c} AS {DUCKDB_TYPES[t]}) AS {c}" for c, t in columns.items())
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            connection.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {select} "
                f"FROM read_parquet([{listing}], hive_partitioning = false)"
            )
        else:
            ddl = ", ".join(f"{c} {DUCKDB_TYPES[t]}" for c, t in columns.items())
            connection.execute(f"CREATE OR REPLACE TEMP TABLE {view} ({ddl})")
    w1 = (DUCKDB_SQL / "w1_features.sql").read_text().format(**query.bounds)
    connection.execute(f"CREATE OR REPLACE TEMP VIEW w1_features AS {w1}")
    text = (DUCKDB_SQL / f"{query.table}.sql").read_text().format(label_window_days=query.label_window_days)
    return connection.execute(text).df()


def timed(function, *args) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values(["eval_start_date", "instance"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"instance": frame["instance"].astype("int64"), "eval_start_date": frame["eval_start_date"].astype(str)})
    for column in frame.columns:
        if column not in out:
            out[column] = frame[column].astype("int64")
    return out


def compare(spark_rows: pd.DataFrame, duckdb_rows: pd.DataFrame) -> dict:
    """Same row count, same columns, and every value equal (all rows, not a sample)."""
    result = {"spark_rows": int(len(spark_rows)), "duckdb_rows": int(len(duckdb_rows))}
    result["same_row_count"] = result["spark_rows"] == result["duckdb_rows"]
    result["same_columns"] = list(spark_rows.columns) == list(duckdb_rows.columns)
    if result["same_row_count"] and result["same_columns"]:
        left, right = _normalised(spark_rows), _normalised(duckdb_rows)
        unequal = (left != right).sum()
        result["unequal_cells"] = {c: int(n) for c, n in unequal.items() if n}
        result["equal_values"] = not result["unequal_cells"]
    else:
        result["equal_values"] = False
    return result
