"""Write hand-built raw tables in the contract's layout (Parquet, `week=` partitions)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from churn_assets.contract import PARTITION_DATE_COLUMN, RAW_CONVERSIONS, RAW_INSTANCES, RAW_USAGE_EVENTS
from churn_assets.weeks import week_of

ARROW_TYPES = {
    RAW_INSTANCES: pa.schema(
        [("instance", pa.int64()), ("eval_start_date", pa.date32()), ("product", pa.string()), ("region", pa.string())]
    ),
    RAW_USAGE_EVENTS: pa.schema(
        [
            ("instance", pa.int64()),
            ("user_id", pa.int64()),
            ("event_date", pa.date32()),
            ("event_type", pa.string()),
            ("platform", pa.string()),
            ("event_count", pa.int32()),
        ]
    ),
    RAW_CONVERSIONS: pa.schema([("instance", pa.int64()), ("converted_date", pa.date32())]),
}


def write_raw(root, table: str, rows: list[dict], schema: pa.Schema | None = None, file_name="part-0.parquet"):
    """Write rows into the week partitions of their partitioning date."""
    schema = schema or ARROW_TYPES[table]
    by_week: dict[date, list[dict]] = defaultdict(list)
    for row in rows:
        by_week[week_of(row[PARTITION_DATE_COLUMN[table]])].append(row)
    for week, week_rows in by_week.items():
        folder = root / table / f"week={week.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(week_rows, schema=schema), folder / file_name)


def instance(i: int, start: date, product="jira-software", region="emea") -> dict:
    return {"instance": i, "eval_start_date": start, "product": product, "region": region}


def event(i: int, user: int, day: date, event_type: str, count: int = 1, platform: str = "web") -> dict:
    return {
        "instance": i,
        "user_id": user,
        "event_date": day,
        "event_type": event_type,
        "platform": platform,
        "event_count": count,
    }


def conversion(i: int, day: date) -> dict:
    return {"instance": i, "converted_date": day}
