"""The two feature tables, computed with Spark SQL from the raw tables.

`compute_feature_table` runs one Spark job over a range of cohort weeks (a single-run backfill),
and `write_weekly_csv` writes one CSV per cohort week under the contract's folder, atomically, so
re-materializing a week replaces its file.

The training table's run also writes its evaluators' week-1 usage day by day (sql/w1_daily.sql,
over the views it has registered anyway) to W1_DAILY_USAGE_DIR, one CSV per cohort week: the
behaviour report reads those instead of scanning the raw usage of its 13-week window again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from churn_assets.contract import (
    INSTANCES_MODELING_COLUMNS,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_COLUMNS,
    INSTANCES_W1_DIR,
    RAW_CONVERSIONS,
    RAW_INSTANCES,
    RAW_USAGE_EVENTS,
    W1_DAILY_USAGE_DIR,
    W1_DAYS,
)
from churn_assets.raw_tables import find_partitions, register_view
from churn_assets.weeks import week_key, weeks_between
from resources.storage import StorageRoot

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# table name -> (query file, output folder, columns)
TABLES = {
    "instances_modeling": ("instances_modeling.sql", INSTANCES_MODELING_DIR, INSTANCES_MODELING_COLUMNS),
    "instances_w1": ("instances_w1.sql", INSTANCES_W1_DIR, INSTANCES_W1_COLUMNS),
}


def read_sql(name: str, **params: object) -> str:
    text = (SQL_DIR / name).read_text(encoding="utf-8")
    return text.format(**params) if params else text


def read_sql_statements(name: str, **params: object) -> list[str]:
    """The statements of a multi-statement SQL file (DDL), comment lines removed, split on `;`."""
    lines = [line for line in read_sql(name, **params).splitlines() if not line.lstrip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


@dataclass
class FeatureTable:
    table: str
    weeks: list[str]
    rows: pd.DataFrame
    exclusions: pd.DataFrame  # one row per cohort week: raw rows left out by definition
    missing_partitions: dict[str, list[str]] = field(default_factory=dict)  # raw table -> weeks
    daily: pd.DataFrame | None = None  # sql/w1_daily.sql of the same evaluators (training table only)

    def _cohort_weeks(self) -> pd.Series:
        week = pd.to_datetime(self.rows["eval_start_date"])
        return (week - pd.to_timedelta(week.dt.weekday, unit="D")).dt.strftime("%Y-%m-%d")

    def rows_by_week(self) -> dict[str, pd.DataFrame]:
        """Every requested week, empty ones included (an empty cohort writes a header-only file)."""
        monday = self._cohort_weeks()
        return {w: self.rows[monday == w].reset_index(drop=True) for w in self.weeks}

    def daily_by_week(self) -> dict[str, pd.DataFrame]:
        """The day-by-day rows of each requested week's evaluators ({} without daily rows)."""
        if self.daily is None:
            return {}
        week_of_instance = pd.Series(self._cohort_weeks().to_numpy(), index=self.rows["instance"].to_numpy())
        monday = self.daily["instance"].map(week_of_instance)
        return {w: self.daily[monday == w].reset_index(drop=True) for w in self.weeks}


def register_raw_views(
    spark, storage: StorageRoot, first_week: date, last_week: date, label_window_days: int | None
) -> dict[str, list[str]]:
    """Register raw_instances, raw_usage_events and raw_conversions for cohorts first..last week.

    Reads only the partitions that can matter: every instances partition (small, and needed to tell
    an orphan event from an older cohort's later usage), usage from the week before the first cohort
    (events dated before a start) to the week after the last (week 1 of a Sunday starter), and
    conversions up to the end of the last cohort's label window (none when label_window_days is
    None: the scoring table has no label). Returns the missing partitions by table.
    """
    last_day = last_week + timedelta(days=6)
    wanted = {
        RAW_INSTANCES: None,
        RAW_USAGE_EVENTS: weeks_between(first_week - timedelta(weeks=1), last_day + timedelta(days=W1_DAYS)),
    }
    if label_window_days is not None:
        wanted[RAW_CONVERSIONS] = weeks_between(first_week, last_day + timedelta(days=label_window_days))
    missing = {}
    for table, weeks in wanted.items():
        partitions = find_partitions(storage, table, weeks)
        register_view(spark, storage, partitions, view="raw_" + table.rsplit("/", 1)[-1])
        if table == RAW_INSTANCES:
            # All instance partitions were read; the cohorts asked for may still lack one.
            cohorts = {week_key(w) for w in weeks_between(first_week, last_week)}
            partitions.missing = sorted(cohorts - set(partitions.present))
        if partitions.missing:
            missing[table] = partitions.missing
    return missing


def register_w1_views(spark, first_week: date, last_week: date) -> None:
    """The temp views w1_cohort, w1_events and w1_features of cohorts first..last week.

    Needs the raw views (`register_raw_views`). w1_cohort and w1_events are the one definition
    of who is in a cohort and which raw rows count; w1_features and the report's w1_daily read them.
    """
    bounds = {"first_day": first_week.isoformat(), "end_day": (last_week + timedelta(days=7)).isoformat()}
    for view in ("w1_cohort", "w1_events", "w1_features"):
        spark.sql(read_sql(f"{view}.sql", **bounds)).createOrReplaceTempView(view)


def compute_feature_table(
    spark,
    storage: StorageRoot,
    table: str,
    first_week: date,
    last_week: date,
    label_window_days: int,
) -> FeatureTable:
    """One Spark job: `table` for the cohort weeks first_week..last_week (Mondays, inclusive)."""
    query_file, _, columns = TABLES[table]
    end_day = last_week + timedelta(days=7)
    bounds = {"first_day": first_week.isoformat(), "end_day": end_day.isoformat()}
    labelled = "retained" in columns
    missing = register_raw_views(spark, storage, first_week, last_week, label_window_days if labelled else None)
    register_w1_views(spark, first_week, last_week)
    rows = spark.sql(read_sql(query_file, label_window_days=label_window_days)).toPandas()
    rows = rows[list(columns)].sort_values(["eval_start_date", "instance"], kind="stable").reset_index(drop=True)
    exclusions = spark.sql(read_sql("usage_exclusions.sql", **bounds)).toPandas()
    daily = None
    if labelled:
        daily = spark.sql(read_sql("w1_daily.sql")).toPandas().sort_values(["instance", "day_index"], kind="stable")
    weeks = [week_key(w) for w in weeks_between(first_week, last_week)]
    return FeatureTable(table, weeks, rows, exclusions, missing, daily)


def write_weekly_csv(storage: StorageRoot, table: FeatureTable) -> dict[str, int]:
    """One CSV with a header per cohort week, atomically replacing the week's previous file; the
    week's day-by-day usage first, so a week's table file never stands beside older daily rows."""
    for week, daily in table.daily_by_week().items():
        storage.write_csv(f"{W1_DAILY_USAGE_DIR}/{week}.csv", daily)
    folder = TABLES[table.table][1]
    written = {}
    for week, rows in table.rows_by_week().items():
        storage.write_csv(f"{folder}/{week}.csv", rows)
        written[week] = len(rows)
    return written
