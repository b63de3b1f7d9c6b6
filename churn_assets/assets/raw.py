"""The raw telemetry tables: external assets the platform reads but never writes.

They start the lineage in the UI. Upstream owns them; their layout is the data contract.
"""

from __future__ import annotations

import dagster as dg

from churn_assets.contract import RAW_CONVERSIONS, RAW_INSTANCES, RAW_SCHEMAS, RAW_USAGE_EVENTS

OWNER = "team:marketing-data-engineering"


def _raw_spec(name: str, table: str, description: str) -> dg.AssetSpec:
    columns = dg.TableSchema(
        columns=[dg.TableColumn(name=column, type=sql_type) for column, sql_type in RAW_SCHEMAS[table].items()]
    )
    return dg.AssetSpec(
        key=name,
        description=description,
        group_name="raw_telemetry",
        kinds={"parquet", "s3"},
        owners=[OWNER],
        metadata={
            "path": f"{table}/week=YYYY-MM-DD/*.parquet",
            "dagster/column_schema": columns,
            "contract": "shared/CONTRACT.md",
        },
    )


raw_instances = _raw_spec(
    "raw_instances", RAW_INSTANCES, "One row per evaluator instance (a site that started an evaluation)."
)
raw_usage_events = _raw_spec(
    "raw_usage_events",
    RAW_USAGE_EVENTS,
    "Product usage: one row per instance, user, day, event type and platform, with an event count.",
)
raw_conversions = _raw_spec(
    "raw_conversions", RAW_CONVERSIONS, "One row per evaluator instance that became a paying customer."
)

RAW_ASSETS = [raw_instances, raw_usage_events, raw_conversions]
