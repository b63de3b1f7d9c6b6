"""Finding, validating and registering the contract's raw tables for one Spark run.

Raw tables are registered from their files inside each run (temp views), so no shared metastore is
needed. Before Spark reads a partition its Parquet footers are checked against the contract, so a
bad file fails with a message naming the table, the partition and the column, not a JVM trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from churn_assets.contract import RAW_SCHEMAS
from churn_assets.weeks import week_key
from resources.storage import StorageRoot


class ContractViolation(ValueError):
    """Input that does not follow ../shared/CONTRACT.md; the message names table, partition, column."""


# Arrow types accepted for each contract type: narrower integers and other date encodings are read
# and cast; anything else is a contract violation.
_ACCEPTED = {
    "bigint": lambda t: pa.types.is_integer(t),
    "int": lambda t: pa.types.is_integer(t),
    "date": lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t),
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t),
}


@dataclass
class RawPartitions:
    """The week folders of one raw table that a run reads."""

    table: str
    present: dict[str, str] = field(default_factory=dict)  # week key -> folder
    missing: list[str] = field(default_factory=list)  # requested weeks with no folder or no files


def week_folder(table: str, week: date | str) -> str:
    return f"{table}/week={week if isinstance(week, str) else week_key(week)}"


def available_weeks(storage: StorageRoot, table: str) -> list[str]:
    """Week keys of the partitions a table has, oldest first."""
    return sorted(n.split("=", 1)[1] for n in storage.list_names(table) if n.startswith("week="))


def parquet_files(storage: StorageRoot, folder: str) -> list[str]:
    return [f"{folder}/{n}" for n in storage.list_names(folder) if not n.endswith((".crc", ".tmp"))]


def validate_partition(storage: StorageRoot, table: str, week: str) -> list[str]:
    """Check every file of a partition against the contract; return the files."""
    folder = week_folder(table, week)
    files = parquet_files(storage, folder)
    expected = RAW_SCHEMAS[table]
    for relative in files:
        where = f"{table} partition week={week} file {relative.rsplit('/', 1)[-1]}"
        try:
            schema = pq.read_schema(storage.local_path(relative))
        except Exception as exc:  # a truncated or non-Parquet file
            raise ContractViolation(f"{where}: not a readable Parquet file ({exc})") from exc
        for column, sql_type in expected.items():
            if column not in schema.names:
                raise ContractViolation(f"{where}: column {column!r} is missing (contract: {sql_type})")
            arrow_type = schema.field(column).type
            if not _ACCEPTED[sql_type](arrow_type):
                raise ContractViolation(
                    f"{where}: column {column!r} has type {arrow_type}, the contract says {sql_type}"
                )
    return files


def find_partitions(storage: StorageRoot, table: str, weeks: list[date] | None) -> RawPartitions:
    """Validated partitions of `table` for `weeks` (None: every partition the table has)."""
    wanted = available_weeks(storage, table) if weeks is None else [week_key(w) for w in weeks]
    found = RawPartitions(table)
    for week in wanted:
        if validate_partition(storage, table, week):
            found.present[week] = storage.spark_uri(week_folder(table, week))
        else:
            found.missing.append(week)
    return found


def register_view(spark, storage: StorageRoot, partitions: RawPartitions, view: str) -> None:
    """Register the partitions as a temp view with exactly the contract's columns and types."""
    columns = RAW_SCHEMAS[partitions.table]
    ddl = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    if partitions.present:
        frame = (
            spark.read.option("basePath", storage.spark_uri(partitions.table, stage=False))
            .parquet(*partitions.present.values())
            .selectExpr(*(f"CAST({name} AS {sql_type}) AS {name}" for name, sql_type in columns.items()))
        )
    else:
        frame = spark.createDataFrame([], ddl)
    frame.createOrReplaceTempView(view)

