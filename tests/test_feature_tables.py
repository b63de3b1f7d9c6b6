"""The contract's features and label, exact values on a small hand-built raw data set."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import (
    FEATURE_COLUMNS,
    INSTANCES_MODELING_COLUMNS,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_COLUMNS,
    INSTANCES_W1_DIR,
    RAW_CONVERSIONS,
    RAW_INSTANCES,
    RAW_USAGE_EVENTS,
    W1_DAILY_USAGE_DIR,
)
from churn_assets.features import read_sql, read_sql_statements
from tests.rawdata import conversion, event, instance, write_raw

WEEK_A = "2026-09-07"  # Monday
WEEK_B = "2026-09-14"
D = date.fromisoformat


def build_raw(root: Path) -> None:
    write_raw(
        root,
        RAW_INSTANCES,
        [
            instance(1, D("2026-09-07")),  # busy evaluator, Monday starter
            instance(2, D("2026-09-13")),  # Sunday starter with no events at all
            instance(3, D("2026-09-10")),  # week 1 runs into the next week's partition
            instance(3, D("2026-09-10")),  # duplicated instance row
            instance(4, D("2026-09-14")),  # the next cohort week
        ],
    )
    write_raw(
        root,
        RAW_USAGE_EVENTS,
        [
            event(1, 10, D("2026-09-07"), "issue_created", 3),
            event(1, 10, D("2026-09-07"), "issue_created", 3),  # exact duplicate: counts once
            event(1, 11, D("2026-09-07"), "issue_viewed", 2, platform="mobile"),
            event(1, 10, D("2026-09-08"), "project_created", 1),
            event(1, 10, D("2026-09-08"), "sprint_started", 1, platform="mobile"),
            event(1, 12, D("2026-09-13"), "user_invited", 4),  # day 6: the last day of week 1
            event(1, 12, D("2026-09-14"), "issue_created", 100),  # day 7: after week 1
            event(1, 10, D("2026-09-05"), "issue_created", 50),  # before the evaluation started
            event(1, 13, D("2026-09-09"), "page_loaded", 7),  # unknown event type: user 13 not active
            event(999, 90, D("2026-09-08"), "issue_created", 5),  # orphan: no such instance
            event(3, 30, D("2026-09-16"), "issue_completed", 2, platform="mobile"),  # day 6
            event(3, 30, D("2026-09-17"), "issue_completed", 9, platform="mobile"),  # day 7
            event(3, 31, D("2026-09-10"), "watcher_added", 1),
            event(3, 31, D("2026-09-10"), "user_mentioned", 2),
            event(3, 32, D("2026-09-11"), "issue_commented", 3),
            event(3, 32, D("2026-09-11"), "issue_assigned", 1),
            event(3, 32, D("2026-09-12"), "issue_updated", 6),
            event(3, 32, D("2026-09-12"), "sprint_finished", 1),
            event(4, 40, D("2026-09-14"), "issue_updated", 5),
            event(4, 41, D("2026-09-15"), "issue_commented", 1),
            event(4, 40, D("2026-09-15"), "issue_commented", 1),
        ],
    )
    write_raw(
        root,
        RAW_CONVERSIONS,
        [
            conversion(1, D("2026-09-07")),  # the start day itself: retained
            conversion(2, D("2026-10-12")),  # start + 29 days: retained
            conversion(3, D("2026-10-10")),  # start + 30 days: outside the window
        ],
    )


ZERO = dict.fromkeys(FEATURE_COLUMNS, 0)
EXPECTED = {
    1: {
        **ZERO,
        "number_of_projects": 1,
        "number_of_issues": 3,
        "number_of_invites": 4,
        "w1_active_users": 3,  # users 10, 11, 12
        "w1_agg_active_users": 4,  # 2 on 09-07, 1 on 09-08, 1 on 09-13
        "w1_max_active_users": 2,
        "issues_viewed": 2,
        "mobile_usage": 3,  # issue_viewed 2 + sprint_started 1
        "sprint_started": 1,
    },
    2: dict(ZERO),
    3: {
        **ZERO,
        "w1_active_users": 3,
        "w1_agg_active_users": 4,  # 09-10: 31, 09-11: 32, 09-12: 32, 09-16: 30
        "w1_max_active_users": 1,
        "watchers_added": 1,
        "at_mentions": 2,
        "issues_commented": 3,
        "issues_assigned": 1,
        "issues_updated": 6,
        "sprint_finished": 1,
        "issues_completed": 2,
        "mobile_usage": 2,
    },
    4: {
        **ZERO,
        "issues_updated": 5,
        "issues_commented": 2,
        "w1_active_users": 2,
        "w1_agg_active_users": 3,  # 09-14: 40; 09-15: 40, 41
        "w1_max_active_users": 2,
    },
}
RETAINED = {1: 1, 2: 1, 3: 0, 4: 0}
START = {1: "2026-09-07", 2: "2026-09-13", 3: "2026-09-10", 4: "2026-09-14"}


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


@pytest.fixture()
def raw_root(storage):
    build_raw(storage.base)
    return storage


def read_table(storage, folder: str, week: str) -> pd.DataFrame:
    return pd.read_csv(storage.path(f"{folder}/{week}.csv"))


def expected_frame(instances: list[int], with_label: bool) -> pd.DataFrame:
    rows = []
    for i in instances:
        row = {"instance": i, "eval_start_date": START[i], **EXPECTED[i]}
        if with_label:
            row["retained"] = RETAINED[i]
        rows.append(row)
    columns = INSTANCES_MODELING_COLUMNS if with_label else INSTANCES_W1_COLUMNS
    return pd.DataFrame(rows)[list(columns)]


def test_feature_names_in_sql_are_the_contracts():
    sql = read_sql("w1_features.sql")
    for column in FEATURE_COLUMNS:
        assert f"AS {column}" in sql


def test_instances_modeling_exact_values_over_a_two_week_range(raw_root, resources):
    result = dg.materialize(
        [instances_modeling], resources=resources, tags=range_tags(WEEK_A, WEEK_B)
    )
    assert result.success
    week_a = read_table(raw_root, INSTANCES_MODELING_DIR, WEEK_A)
    week_b = read_table(raw_root, INSTANCES_MODELING_DIR, WEEK_B)
    assert list(week_a.columns) == list(INSTANCES_MODELING_COLUMNS)
    pd.testing.assert_frame_equal(week_a, expected_frame([1, 3, 2], with_label=True), check_dtype=False)
    pd.testing.assert_frame_equal(week_b, expected_frame([4], with_label=True), check_dtype=False)


def test_the_training_table_writes_each_weeks_daily_usage_that_adds_up_to_its_features(raw_root, resources):
    """The report's day-by-day rows come from the same run as the table, one file per week."""
    assert dg.materialize([instances_modeling], resources=resources, tags=range_tags(WEEK_A, WEEK_B)).success
    assert sorted(p.name for p in raw_root.path(W1_DAILY_USAGE_DIR).iterdir()) == [f"{WEEK_A}.csv", f"{WEEK_B}.csv"]
    for week in (WEEK_A, WEEK_B):
        table = read_table(raw_root, INSTANCES_MODELING_DIR, week).set_index("instance")
        daily = read_table(raw_root, W1_DAILY_USAGE_DIR, week)
        assert set(daily["instance"]) <= set(table.index)  # only the week's evaluators
        assert daily["day_index"].between(0, 6).all()
        sums = daily.groupby("instance").sum().reindex(table.index, fill_value=0)
        assert (sums["new_users"] == table["w1_active_users"]).all()
        assert (sums["active_users"] == table["w1_agg_active_users"]).all()
        for column in ("number_of_issues", "mobile_usage", "sprint_finished"):
            assert (sums[column] == table[column]).all(), column
    # the scoring table writes no day-by-day file
    assert dg.materialize([instances_w1], resources=resources, partition_key="2026-09-21").success
    assert not raw_root.exists(f"{W1_DAILY_USAGE_DIR}/2026-09-21.csv")


def test_exclusions_are_counted_per_cohort_week(raw_root, resources):
    result = dg.materialize([instances_w1], resources=resources, partition_key=WEEK_A)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("instances_w1")
    excluded = materialization.metadata["excluded_raw_rows"].value
    # cohort_week, instance_rows, duplicate_instance_rows, event_rows_to_day_6 (8 of instance 1, 7 of
    # instance 3, the orphan), orphan, invalid, before the start, unknown type, duplicate
    row = next(line for line in excluded.splitlines() if WEEK_A in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == [WEEK_A, "4", "1", "16", "1", "0", "1", "1", "1"]


def test_instances_w1_has_the_same_features_without_label(raw_root, resources):
    assert dg.materialize([instances_w1], resources=resources, partition_key=WEEK_A).success
    week_a = read_table(raw_root, INSTANCES_W1_DIR, WEEK_A)
    assert list(week_a.columns) == list(INSTANCES_W1_COLUMNS)
    pd.testing.assert_frame_equal(week_a, expected_frame([1, 3, 2], with_label=False), check_dtype=False)


def test_rematerializing_a_partition_replaces_it(raw_root, resources):
    for _ in range(2):
        assert dg.materialize([instances_modeling], resources=resources, partition_key=WEEK_A).success
    folder = raw_root.path(INSTANCES_MODELING_DIR)
    assert sorted(p.name for p in folder.iterdir()) == [f"{WEEK_A}.csv"]  # no temp files left
    assert len(read_table(raw_root, INSTANCES_MODELING_DIR, WEEK_A)) == 3


def test_empty_cohort_week_writes_a_header_only_file(raw_root, resources):
    assert dg.materialize([instances_w1], resources=resources, partition_key="2026-09-21").success
    frame = read_table(raw_root, INSTANCES_W1_DIR, "2026-09-21")
    assert list(frame.columns) == list(INSTANCES_W1_COLUMNS) and frame.empty


def test_missing_column_fails_naming_table_partition_and_column(storage, resources):
    import pyarrow as pa

    build_raw(storage.base)
    bad_schema = pa.schema([("instance", pa.int64()), ("user_id", pa.int64()), ("event_date", pa.date32())])
    write_raw(
        storage.base,
        RAW_USAGE_EVENTS,
        [{"instance": 1, "user_id": 1, "event_date": D("2026-09-08")}],
        schema=bad_schema,
        file_name="part-bad.parquet",
    )
    result = dg.materialize(
        [instances_w1], resources=resources, partition_key=WEEK_A, raise_on_error=False
    )
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "raw/usage_events partition week=2026-09-07" in message
    assert "column 'event_type' is missing" in message


def test_talks_ddl_reads_exactly_the_rows_written(raw_root, resources, spark):
    assert dg.materialize([instances_modeling], resources=resources, tags=range_tags(WEEK_A, WEEK_B)).success
    location = raw_root.uri(INSTANCES_MODELING_DIR)
    for statement in read_sql_statements("ddl/instances_modeling.sql", marketing_schema="churn_test", location=location):
        spark.sql(statement)
    read_back = spark.sql("SELECT * FROM churn_test.instances_modeling_rows").toPandas()
    written = pd.concat(
        [read_table(raw_root, INSTANCES_MODELING_DIR, w) for w in (WEEK_A, WEEK_B)], ignore_index=True
    )
    assert list(read_back.columns) == list(INSTANCES_MODELING_COLUMNS)
    key = ["instance"]
    pd.testing.assert_frame_equal(
        read_back.sort_values(key).reset_index(drop=True),
        written.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )
