"""The raw-usage simulator writes exactly the contract's raw tables, deterministically, noisy."""

from __future__ import annotations

import pathlib
import shutil
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from churn_assets import contract
from churn_assets.simulator import NOISE_KINDS, SimulationSummary, simulate
from churn_assets.weeks import latest_labelled_week, parse_week, week_of

AS_OF = date(2026, 12, 3)  # a Thursday: the week in progress holds Monday to Wednesday
INSTANCES = 600
WEEKS = 3
ARGS = dict(instances=INSTANCES, weeks=WEEKS, as_of=AS_OF)

RAW_TABLES = (contract.RAW_INSTANCES, contract.RAW_USAGE_EVENTS, contract.RAW_CONVERSIONS)
ALL_TABLES = (*RAW_TABLES, contract.TRUTH)
ARROW_TYPES = {"bigint": pa.int64(), "date": pa.date32(), "string": pa.string(), "int": pa.int32()}
TRUTH_SCHEMA = pa.schema(
    [("instance", pa.int64()), ("eval_start_date", pa.date32()), ("true_probability", pa.float64())]
)


def _files(root: pathlib.Path, table: str) -> list[pathlib.Path]:
    return sorted((root / table).glob("week=*/*.parquet"))


def _read(root: pathlib.Path, table: str) -> pa.Table:
    """All rows of a table, without the partition column (files only), in file order."""
    files = _files(root, table)
    assert files, f"no files under {root / table}"
    return pa.concat_tables([pq.read_table(f) for f in files])


def _partition_date_column(table: str) -> str:
    return contract.PARTITION_DATE_COLUMN.get(table, "eval_start_date")


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[pathlib.Path, SimulationSummary]:
    root = tmp_path_factory.mktemp("sim")
    return root, simulate(root, **ARGS)


def test_same_seed_writes_identical_data(sim, tmp_path):
    root, summary = sim
    again = simulate(tmp_path, **ARGS)
    for table in ALL_TABLES:
        assert [f.relative_to(root) for f in _files(root, table)] == [
            f.relative_to(tmp_path) for f in _files(tmp_path, table)
        ]
        assert _read(root, table).equals(_read(tmp_path, table)), table
        for a, b in zip(_files(root, table), _files(tmp_path, table)):
            assert a.read_bytes() == b.read_bytes(), a
    assert again.noise_rows == summary.noise_rows
    assert again.event_rows == summary.event_rows


def test_different_seed_writes_different_data(sim, tmp_path):
    root, summary = sim
    simulate(tmp_path, seed=summary.seed + 1, **ARGS)
    for table in (contract.RAW_USAGE_EVENTS, contract.RAW_CONVERSIONS, contract.TRUTH):
        assert not _read(root, table).equals(_read(tmp_path, table)), table


def test_schemas_are_exactly_the_contracts(sim):
    root, _ = sim
    for table in RAW_TABLES:
        expected = pa.schema(
            [(name, ARROW_TYPES[kind]) for name, kind in contract.RAW_SCHEMAS[table].items()]
        )
        for f in _files(root, table):
            schema = pq.read_schema(f)
            assert schema.names == expected.names, f
            assert [fld.type for fld in schema] == [fld.type for fld in expected], f
            assert "week" not in schema.names
    for f in _files(root, contract.TRUTH):
        schema = pq.read_schema(f)
        assert schema.names == TRUTH_SCHEMA.names and schema.types == TRUTH_SCHEMA.types, f


def test_no_nulls_and_valid_values(sim):
    root, _ = sim
    for table in ALL_TABLES:
        data = _read(root, table)
        for name in data.column_names:
            assert data.column(name).null_count == 0, (table, name)
    events = _read(root, contract.RAW_USAGE_EVENTS)
    assert pc.min(events["event_count"]).as_py() >= 1
    assert set(events["platform"].unique().to_pylist()) == set(contract.PLATFORMS)
    instances = _read(root, contract.RAW_INSTANCES)
    assert len(instances["instance"].unique()) == instances.num_rows
    conversions = _read(root, contract.RAW_CONVERSIONS)
    assert len(conversions["instance"].unique()) == conversions.num_rows


def test_partition_folders_are_mondays_holding_their_weeks_rows(sim):
    root, summary = sim
    for table in ALL_TABLES:
        folders = sorted(p for p in (root / table).iterdir())
        assert folders
        keys = []
        for folder in folders:
            assert folder.is_dir() and folder.name.startswith("week="), folder
            monday = parse_week(folder.name.removeprefix("week="))  # raises unless a Monday
            keys.append(folder.name.removeprefix("week="))
            files = list(folder.iterdir())
            assert [f.name for f in files] == ["part-0.parquet"], folder
            days = pq.read_table(files[0]).column(_partition_date_column(table)).to_pylist()
            assert days, folder
            assert all(monday <= d < monday + timedelta(days=7) for d in days), folder
        assert tuple(keys) == summary.week_keys[table]


def test_no_date_on_or_after_as_of(sim):
    root, _ = sim
    for table, column in (
        (contract.RAW_INSTANCES, "eval_start_date"),
        (contract.RAW_USAGE_EVENTS, "event_date"),
        (contract.RAW_CONVERSIONS, "converted_date"),
        (contract.TRUTH, "eval_start_date"),
    ):
        latest = pc.max(_read(root, table)[column]).as_py()
        assert latest < AS_OF, (table, latest)
    # the week in progress is there, up to the day before as_of
    starts = _read(root, contract.RAW_INSTANCES)["eval_start_date"].to_pylist()
    assert week_of(max(starts)) == week_of(AS_OF)


def test_labelled_cohorts_are_the_requested_weeks(sim):
    root, summary = sim
    last = latest_labelled_week(AS_OF)
    first = last - timedelta(weeks=WEEKS - 1)
    assert (summary.first_labelled_week, summary.last_labelled_week) == (first, last)
    starts = np.array(_read(root, contract.RAW_INSTANCES)["eval_start_date"].to_pylist())
    assert starts.min() >= first  # nothing before the first labelled cohort
    labelled = (starts >= first) & (starts < last + timedelta(days=7))
    assert labelled.sum() == INSTANCES == summary.labelled_instances
    cohorts = {week_of(d) for d in starts[labelled]}
    assert cohorts == {first + timedelta(weeks=i) for i in range(WEEKS)}
    # the recent cohorts follow at the same weekly rate, up to the week of as_of
    recent = starts[~labelled]
    assert recent.min() >= last + timedelta(days=7)
    assert len(recent) == summary.recent_instances
    assert summary.instances == len(starts) == INSTANCES + summary.recent_instances
    per_week = {}
    for d in recent:
        per_week[week_of(d)] = per_week.get(week_of(d), 0) + 1
    full_weeks = [w for w in per_week if w < week_of(AS_OF)]
    assert len(full_weeks) == (week_of(AS_OF) - last).days // 7 - 1
    assert all(per_week[w] == round(INSTANCES / WEEKS) for w in full_weeks)
    assert 0 < per_week[week_of(AS_OF)] < round(INSTANCES / WEEKS)


def test_noise_kinds_present_and_counted(sim):
    root, summary = sim
    assert set(summary.noise_rows) == set(NOISE_KINDS)
    assert all(summary.noise_rows[k] > 0 for k in NOISE_KINDS), summary.noise_rows
    events = _read(root, contract.RAW_USAGE_EVENTS).to_pandas()
    assert len(events) == summary.event_rows
    distinct = events.drop_duplicates()
    assert len(events) - len(distinct) == summary.noise_rows["duplicate_row"]
    # every other kind is counted once per distinct row
    unknown = ~distinct.event_type.isin(contract.EVENT_TYPES)
    assert unknown.sum() == summary.noise_rows["unknown_event_type"]
    instances = _read(root, contract.RAW_INSTANCES).to_pandas()
    orphan = ~distinct.instance.isin(instances.instance)
    assert orphan.sum() == summary.noise_rows["orphan_event"]
    assert distinct.instance[orphan].nunique() == summary.orphan_instances
    joined = distinct.merge(instances[["instance", "eval_start_date"]], on="instance")
    gap = (joined.eval_start_date - joined.event_date).apply(lambda d: d.days)
    assert (gap > 0).sum() == summary.noise_rows["pre_start_event"]
    assert gap.max() <= 5
    # apart from the duplicates, one row per instance, user, day, event type and platform
    keys = ["instance", "user_id", "event_date", "event_type", "platform"]
    assert not distinct.duplicated(keys).any()
    # the noise stays low: each kind at most a few per cent of the rows
    assert all(v < 0.03 * summary.event_rows for v in summary.noise_rows.values())


def test_rerun_into_the_same_root_replaces(tmp_path):
    first = simulate(tmp_path, **ARGS)
    counts = {t: _read(tmp_path, t).num_rows for t in ALL_TABLES}
    # a stale file in a week folder the run writes (e.g. from an older writer) is removed too
    key = first.week_keys[contract.RAW_USAGE_EVENTS][1]
    folder = tmp_path / contract.RAW_USAGE_EVENTS / f"week={key}"
    shutil.copy(folder / "part-0.parquet", folder / "part-1.parquet")
    second = simulate(tmp_path, **ARGS)
    assert {t: _read(tmp_path, t).num_rows for t in ALL_TABLES} == counts
    assert second.event_rows == first.event_rows == counts[contract.RAW_USAGE_EVENTS]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "part-0.parquet"]
    assert leftovers == []


def test_truth_has_one_probability_per_instance(sim):
    root, summary = sim
    truth = _read(root, contract.TRUTH)
    instances = _read(root, contract.RAW_INSTANCES)
    assert truth.num_rows == instances.num_rows == summary.instances
    assert len(truth["instance"].unique()) == truth.num_rows
    starts = dict(zip(instances["instance"].to_pylist(), instances["eval_start_date"].to_pylist()))
    assert dict(zip(truth["instance"].to_pylist(), truth["eval_start_date"].to_pylist())) == starts
    p = truth["true_probability"].to_numpy()
    assert p.dtype == np.float64
    assert ((p >= 0) & (p <= 1)).all()
    assert p.std() > 0.1  # a spread, not a constant


def test_labels_follow_the_behaviour(sim):
    """Over the labelled cohorts, retained (contract definition) is near the talk's rate, tracks
    the true probability and goes with more week-1 activity."""
    root, summary = sim
    instances = _read(root, contract.RAW_INSTANCES).to_pandas()
    conversions = _read(root, contract.RAW_CONVERSIONS).to_pandas()
    truth = _read(root, contract.TRUTH).to_pandas()
    events = _read(root, contract.RAW_USAGE_EVENTS).to_pandas().drop_duplicates()
    df = instances.merge(conversions, on="instance", how="left")
    df = df.merge(truth, on=["instance", "eval_start_date"])
    first, last = summary.first_labelled_week, summary.last_labelled_week
    df = df[(df.eval_start_date >= first) & (df.eval_start_date < last + timedelta(days=7))]
    delay = (df.converted_date - df.eval_start_date).apply(lambda d: d.days if d == d else None)
    window = contract.DEFAULT_LABEL_WINDOW_DAYS
    df = df.assign(retained=((delay >= 0) & (delay < window)).astype(int))
    assert len(df) == INSTANCES
    assert 0.15 < df.retained.mean() < 0.33
    assert abs(df.retained.mean() - df.true_probability.mean()) < 0.06
    ev = events[events.event_type.isin(contract.EVENT_TYPES)]
    ev = ev.merge(df[["instance", "eval_start_date"]], on="instance")
    days = (ev.event_date - ev.eval_start_date).apply(lambda d: d.days)
    w1 = ev[(days >= 0) & (days < contract.W1_DAYS)]
    agg = w1.drop_duplicates(["instance", "user_id", "event_date"]).groupby("instance").size()
    df["agg"] = df.instance.map(agg).fillna(0)
    assert df[df.retained == 1]["agg"].mean() > 2 * df[df.retained == 0]["agg"].mean()
    assert (df["agg"] == 0).mean() > 0.1  # evaluators who never came back keep all-zero features
