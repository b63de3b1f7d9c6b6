"""One materialization of a feature table: compute, write, and say what was written.

`build_feature_table` is the whole of it, with no Dagster context in it, so the in-process asset
(churn_assets/assets/tables.py) and the EMR Serverless job (churn_assets/emr_job.py) run the same
code and report the same metadata, each through its own channel (a MaterializeResult, or Pipes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import dagster as dg
import pandas as pd

from churn_assets.features import TABLES, compute_feature_table, write_weekly_csv
from churn_assets.quality import exclusion_records, exclusions_path
from churn_assets.raw_tables import ContractViolation
from resources.storage import StorageRoot


class Log(Protocol):
    """What both Dagster's `context.log` and the Pipes `pipes.log` offer."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


@dataclass
class FeatureTableBuild:
    """What one run of a feature table wrote, for the asset's materialization metadata."""

    table: str
    rows_by_week: dict[str, int]
    uri: str  # the table's folder
    seconds: float
    exclusions: pd.DataFrame  # one row per cohort week: raw rows left out by definition
    missing_partitions: dict[str, list[str]]  # raw table -> weeks
    positive_rate: float | None  # share of `retained`; None for the unlabelled table

    def dagster_metadata(self) -> dict[str, object]:
        """The materialization's metadata in process."""
        kinds = {"path": dg.MetadataValue.path, "md": dg.MetadataValue.md, "json": dg.MetadataValue.json}
        return self._metadata(lambda kind, value: kinds[kind](value))

    def pipes_metadata(self) -> dict[str, object]:
        """The same metadata as Pipes sends it (Pipes takes a plain dict for a typed value)."""
        return self._metadata(lambda kind, value: {"raw_value": value, "type": kind})

    def _metadata(self, typed: Callable[[str, object], object]) -> dict[str, object]:
        """The one list of keys; `typed(kind, value)` types a value (kind: Pipes' type name)."""
        metadata: dict[str, object] = {
            "rows": sum(self.rows_by_week.values()),
            "rows_by_week": typed("json", self.rows_by_week),
            "path": typed("path", self.uri),
            "seconds": round(self.seconds, 2),
            "excluded_raw_rows": typed("md", self.exclusions.to_markdown(index=False)) if len(self.exclusions) else "none",
            "missing_raw_partitions": typed("json", self.missing_partitions) if self.missing_partitions else "none",
        }
        if self.positive_rate is not None:
            metadata["positive_rate"] = self.positive_rate
        return metadata


def build_feature_table(
    spark, storage: StorageRoot, table: str, first_week: date, last_week: date, label_window_days: int, log: Log
) -> FeatureTableBuild:
    """`table` for the cohort weeks first_week..last_week: one Spark job, one CSV per week, and the
    week's exclusion counts for the `exclusions` asset check.

    Raises ContractViolation naming the table, the raw table's partition and the column.
    """
    started = time.perf_counter()
    try:
        result = compute_feature_table(spark, storage, table, first_week, last_week, label_window_days)
    except ContractViolation as exc:
        raise ContractViolation(f"{table}: {exc}") from exc
    written = write_weekly_csv(storage, result)
    for week, record in exclusion_records(table, result.exclusions, result.weeks).items():
        storage.write_text(exclusions_path(table, week), json.dumps(record, indent=2))
    seconds = time.perf_counter() - started
    for raw_table, weeks in result.missing_partitions.items():
        log.warning(f"{table}: raw table {raw_table} has no partition for week(s) {', '.join(weeks)}")
    log.info(f"{table}: wrote {sum(written.values())} rows in {len(written)} week file(s) in {seconds:.1f}s")
    positive_rate = None
    if "retained" in result.rows:
        positive_rate = round(float(result.rows["retained"].mean()), 4) if len(result.rows) else 0.0
    return FeatureTableBuild(
        table=table,
        rows_by_week=written,
        uri=storage.uri(TABLES[table][1]),
        seconds=seconds,
        exclusions=result.exclusions,
        missing_partitions=result.missing_partitions,
        positive_rate=positive_rate,
    )
