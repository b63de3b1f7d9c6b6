"""The behaviour report: numbers on hand-built tables, the charts, the daily SQL, the asset."""

from __future__ import annotations

import io
import json
import math
import re
from datetime import date

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS
from churn_assets.features import read_sql, register_raw_views, register_w1_views
from churn_assets.ml.model import TALK_XGB_PARAMS, train_xgboost
from churn_assets.ml.preprocessing import Preprocessor
from churn_assets.report import (
    CHART_FILES,
    DAILY_COLUMNS,
    DAILY_COUNT_COLUMNS,
    SUMMARY_FILE,
    TABLES_FILE,
    ActivationRule,
    activation_by_day,
    average_daily_active_users,
    behaviour_by_day,
    build_behavior_report,
    daily_feature_mismatches,
    decile_conversion,
    dense_daily,
    feature_importance,
    group_means,
    label_correlations,
    talk_rank_agreement,
    TALK_CORRELATIONS,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def modeling(columns: dict[str, list], retained: list[int]) -> pd.DataFrame:
    """instances_modeling rows: the given feature columns, every other feature 0."""
    rows = len(retained)
    frame = pd.DataFrame({"instance": np.arange(1, rows + 1), "eval_start_date": "2026-09-07", "retained": retained})
    for feature in FEATURE_COLUMNS:
        frame[feature] = columns.get(feature, [0] * rows)
    return frame[list(INSTANCES_MODELING_COLUMNS)]


def daily_rows(rows: list[dict]) -> pd.DataFrame:
    """Per-day rows; unspecified counts are 0."""
    return pd.DataFrame([{**dict.fromkeys(DAILY_COLUMNS, 0), **row} for row in rows])[list(DAILY_COLUMNS)]


# Four evaluators, A=1 .. D=4 (day_index 0 = day 1):
#   A (converted): day 1 one user; day 2 two users (one new), first issue   -> activated by day 2
#   B (did not):   day 1 two users and an issue                             -> activated by day 1
#   C (converted): day 1 one user, 3 issues; day 4 the same user again;
#                  day 5 a second user                                      -> activated by day 5
#   D (did not):   no usage                                                 -> never
HAND_DAILY = daily_rows([
    {"instance": 1, "day_index": 0, "active_users": 1, "new_users": 1},
    {"instance": 1, "day_index": 1, "active_users": 2, "new_users": 1, "number_of_issues": 1},
    {"instance": 2, "day_index": 0, "active_users": 2, "new_users": 2, "number_of_issues": 1},
    {"instance": 3, "day_index": 0, "active_users": 1, "new_users": 1, "number_of_issues": 3},
    {"instance": 3, "day_index": 3, "active_users": 1, "new_users": 0},
    {"instance": 3, "day_index": 4, "active_users": 1, "new_users": 1},
])
HAND_FRAME = modeling(
    {
        "w1_active_users": [2, 2, 2, 0],
        "w1_agg_active_users": [3, 2, 3, 0],
        "w1_max_active_users": [2, 2, 1, 0],
        "number_of_issues": [1, 1, 3, 0],
    },
    retained=[1, 0, 1, 0],
)


def test_activation_by_day_by_hand():
    table = activation_by_day(HAND_FRAME, HAND_DAILY)

    assert table.index.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert table["evaluators"].eq(4).all()
    # C's user came back on day 4: a returning user is not a second user
    assert table["activated"].tolist() == [1, 2, 2, 2, 3, 3, 3]
    assert table["activated_share"].tolist() == [0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75]
    assert table["conversion_activated"].tolist() == pytest.approx([0.0, 0.5, 0.5, 0.5, 2 / 3, 2 / 3, 2 / 3])
    assert table["conversion_not_activated"].tolist() == pytest.approx([2 / 3, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0])


def test_activation_rule_is_configurable():
    anyone = activation_by_day(HAND_FRAME, HAND_DAILY, ActivationRule(min_users=1, min_counts={}))
    assert anyone["activated"].tolist() == [3] * 7
    three_issues = activation_by_day(HAND_FRAME, HAND_DAILY, ActivationRule(min_users=1, min_counts={"number_of_issues": 3}))
    assert three_issues["activated"].tolist() == [1] * 7  # C only
    invites = activation_by_day(HAND_FRAME, HAND_DAILY, ActivationRule(min_users=1, min_counts={"number_of_invites": 1}))
    assert invites["activated"].eq(0).all() and invites["conversion_activated"].isna().all()
    assert invites["conversion_not_activated"].eq(0.5).all()
    assert ActivationRule().describe() == "at least 2 active users and 1 or more issues created"
    with pytest.raises(ValueError, match="activation counts"):
        ActivationRule(min_counts={"page_loaded": 1})


def test_average_daily_active_users_by_hand():
    table = average_daily_active_users(HAND_FRAME, HAND_DAILY)
    assert table.index.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert table["retained"].tolist() == [1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 0.0]  # A and C; D's missing days are 0
    assert table["churned"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # B and D


def test_behaviour_by_day_by_hand():
    result = behaviour_by_day(HAND_FRAME, HAND_DAILY)
    table = result.set_index(["day", "behaviour"])
    # day 2 active users: A 2, B 0, C 0, D 0; converted A, C
    row = table.loc[(2, "active_users")]
    assert (row["converters_mean"], row["others_mean"]) == (1.0, 0.0)
    assert row["correlation"] == pytest.approx(1 / math.sqrt(3))
    # day 1 issues: A 0, C 3 (converted); B 1, D 0
    assert table.loc[(1, "number_of_issues"), ["converters_mean", "others_mean"]].tolist() == [1.5, 0.5]
    assert math.isnan(table.loc[(1, "number_of_invites"), "correlation"])  # nobody invited: undefined
    # by day, then the strongest correlation first, undefined last
    assert result["day"].is_monotonic_increasing and set(result["day"]) == set(range(1, 8))
    for _, rows in result.groupby("day"):
        assert rows["correlation"].dropna().is_monotonic_decreasing
        missing = rows["correlation"].isna().tolist()
        assert missing == sorted(missing)


def test_daily_rows_must_add_up_to_the_features():
    assert daily_feature_mismatches(HAND_FRAME, HAND_DAILY) == 0
    changed = HAND_FRAME.copy()
    changed.loc[2, "w1_active_users"] = 3  # C: 3 distinct users, but its days hold 2
    assert daily_feature_mismatches(changed, HAND_DAILY) == 1
    changed.loc[0, "w1_max_active_users"] = 1  # A's busiest day had 2
    assert daily_feature_mismatches(changed, HAND_DAILY) == 2


def test_bad_daily_rows_are_refused():
    with pytest.raises(ValueError, match="day_index"):
        dense_daily(HAND_DAILY.assign(day_index=7), [1])
    with pytest.raises(ValueError, match="more than one row"):
        dense_daily(pd.concat([HAND_DAILY, HAND_DAILY.iloc[[0]]]), [1])
    with pytest.raises(ValueError, match="new_users"):
        dense_daily(HAND_DAILY.drop(columns="new_users"), [1])


CORRELATION_FRAME = modeling(
    {
        "number_of_issues": [0, 1, 2, 3],
        "number_of_projects": [1, 0, 1, 0],
        "w1_agg_active_users": [0, 0, 1, 1],
        "mobile_usage": [3, 2, 1, 0],
        "issues_viewed": [5, np.nan, 7, 9],
    },
    retained=[0, 0, 1, 1],
)


def test_correlations_by_hand_sorted_as_in_the_talk():
    table = label_correlations(CORRELATION_FRAME)

    expected = {
        "w1_agg_active_users": 1.0,
        "number_of_issues": 2 / math.sqrt(5),  # cov 2 / (sqrt 5 * 1)
        "issues_viewed": math.sqrt(3) / 2,  # the row with a missing value left out: x 5, 7, 9; y 0, 1, 1
        "number_of_projects": 0.0,
        "mobile_usage": -2 / math.sqrt(5),
    }
    assert table["feature"].tolist()[:5] == list(expected)
    assert table["correlation"].tolist()[:5] == pytest.approx(list(expected.values()))
    # constant features have no correlation: last, in contract order
    rest = [f for f in FEATURE_COLUMNS if f not in expected]
    assert table["feature"].tolist()[5:] == rest
    assert table["correlation"].iloc[5:].isna().all()
    assert table.set_index("feature")["talk_correlation"].to_dict() == TALK_CORRELATIONS


def test_talk_rank_agreement():
    talk = pd.DataFrame({"feature": list(TALK_CORRELATIONS), "talk_correlation": list(TALK_CORRELATIONS.values())})
    same_order = talk.assign(correlation=np.linspace(1, 0, len(talk)))
    assert talk_rank_agreement(same_order) == pytest.approx(1.0, abs=0.01)  # the talk's own ties aside
    reversed_order = talk.assign(correlation=np.linspace(0, 1, len(talk)))
    assert talk_rank_agreement(reversed_order) < -0.9


def test_group_means_by_hand():
    table = group_means(CORRELATION_FRAME, ["number_of_issues", "issues_viewed"])
    assert table.loc["number_of_issues"].tolist() == [2.5, 0.5]  # retained (2, 3), churned (0, 1)
    assert table.loc["issues_viewed"].tolist() == [8.0, 5.0]  # the missing value skipped
    assert table.columns.tolist() == ["retained", "churned"]


def test_decile_conversion_by_hand():
    values = list(range(1, 21))
    converted = {2, 3, 4, 10, 19, 20}
    frame = modeling({"number_of_issues": values}, [int(v in converted) for v in values])

    table = decile_conversion(frame, "number_of_issues")

    assert table["group"].tolist() == list(range(1, 11))
    assert table["low"].tolist() == list(range(1, 21, 2)) and table["high"].tolist() == list(range(2, 21, 2))
    assert table["evaluators"].eq(2).all()
    assert table["conversion_rate"].tolist() == [0.5, 1.0, 0, 0, 0.5, 0, 0, 0, 0, 1.0]


def test_decile_conversion_keeps_tied_zeros_together():
    frame = modeling({"number_of_issues": [0] * 6 + [1, 2, 3, 4]}, [1, 0, 0, 0, 0, 0, 1, 1, 0, 1])

    table = decile_conversion(frame, "number_of_issues")

    assert table["low"].tolist() == [0, 1, 2, 3, 4] and table["high"].tolist() == [0, 1, 2, 3, 4]
    assert table["evaluators"].tolist() == [6, 1, 1, 1, 1]
    assert table["conversion_rate"].tolist() == pytest.approx([1 / 6, 1, 1, 0, 1])


def synthetic(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A training frame and its daily rows that add up to it."""
    rng = np.random.default_rng(seed)
    intent = rng.normal(0, 1, rows)
    active = rng.poisson(np.exp(intent)[:, None] * np.ones(7))
    new = np.where(np.arange(7) == 0, active, rng.binomial(active, 0.3))
    records = []
    for i in range(rows):
        for d in range(7):
            if active[i, d]:
                counts = {c: int(rng.poisson(active[i, d] * 1.5)) for c in DAILY_COUNT_COLUMNS}
                records.append({"instance": i + 1, "day_index": d, "active_users": int(active[i, d]),
                                "new_users": int(new[i, d]), **counts})
    daily = daily_rows(records)
    sums = daily.groupby("instance").sum()
    columns = {c: sums[c].reindex(range(1, rows + 1), fill_value=0).tolist() for c in DAILY_COUNT_COLUMNS}
    columns["w1_active_users"] = new.sum(axis=1).tolist()
    columns["w1_agg_active_users"] = active.sum(axis=1).tolist()
    columns["w1_max_active_users"] = active.max(axis=1).tolist()
    retained = (rng.random(rows) < 1 / (1 + np.exp(-(active.sum(axis=1) - 6) / 2))).astype(int).tolist()
    return modeling(columns, retained), daily


def test_feature_importance_is_the_mean_abs_shap_of_a_fixed_sample_above_max_rows():
    from churn_assets.ml.explain import mean_abs_shap

    frame, _ = synthetic(300, seed=4)
    preprocessor = Preprocessor.fit(frame)
    booster = train_xgboost(preprocessor.transform(frame), frame["retained"],
                            {**TALK_XGB_PARAMS, "n_estimators": 20, "n_jobs": 1})
    every_row = mean_abs_shap(booster, preprocessor.transform(frame), preprocessor.feature_names)
    assert feature_importance(frame, preprocessor, booster, max_rows=300) == every_row
    sample = frame.sample(n=120, random_state=0)
    sampled = feature_importance(frame, preprocessor, booster, max_rows=120)
    assert sampled == mean_abs_shap(booster, preprocessor.transform(sample), preprocessor.feature_names)
    assert sampled != every_row
    assert sampled == feature_importance(frame, preprocessor, booster, max_rows=120)  # the same sample every time


def test_the_report_writes_valid_pngs_and_a_summary_that_links_them(tmp_path):
    frame, daily = synthetic(300, seed=3)
    preprocessor = Preprocessor.fit(frame)
    booster = train_xgboost(preprocessor.transform(frame), frame["retained"],
                            {**TALK_XGB_PARAMS, "n_estimators": 10, "n_jobs": 1}, preprocessor.feature_names)

    report = build_behavior_report(frame, daily, preprocessor, booster)
    written = report.write(tmp_path / "report")

    assert set(report.charts) == set(CHART_FILES.values())
    for name in CHART_FILES.values():
        data = written[name].read_bytes()
        assert data[:8] == PNG_MAGIC
        image = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    summary = written[SUMMARY_FILE].read_text()
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", summary))
    assert linked == set(CHART_FILES.values())
    assert all((tmp_path / "report" / name).is_file() for name in linked)
    tables = json.loads(written[TABLES_FILE].read_text())
    assert tables["evaluators"] == 300 and tables["daily_feature_mismatches"] == 0
    assert tables["top_features"] == list(report.importance)[:4] == list(report.cohorts)
    assert len(summary.splitlines()) < 70  # one page


def test_summary_states_the_hand_built_findings():
    report = build_behavior_report(HAND_FRAME, HAND_DAILY, charts=False)
    summary = report.markdown()
    assert "**4 evaluators**" in summary and "**50 %**" in summary
    assert "Share of evaluators activated by day 1: 25 %, day 3: 50 % and day 7: 75 %." in summary
    assert "Evaluators activated by day 7 converted at 67 %, the others at 0 %." in summary
    assert report.activation_rule.describe() in summary
    assert "![" not in summary  # no chart rendered, none linked
    tables = json.loads(report.to_json())  # undefined correlations are null, not NaN
    assert tables["correlations"][-1]["correlation"] is None
    assert [row["activated_share"] for row in tables["activation"]] == [0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75]


# --------------------------------------------------------------------------------------------
# sql/w1_daily.sql


def test_daily_sql_reads_the_same_cohort_and_week_1_events_as_the_features():
    daily, features = read_sql("w1_daily.sql"), read_sql("w1_features.sql")
    for sql in (daily, features):
        assert "FROM w1_events" in sql and "w1_cohort c" in sql and "raw_usage_events" not in sql
    for column in DAILY_COLUMNS:
        assert f"AS {column}" in daily or column == "instance"


def test_daily_sql_exact_rows_that_add_up_to_the_features(spark, storage):
    from tests.test_feature_tables import build_raw

    build_raw(storage.base)
    register_raw_views(spark, storage, date(2026, 9, 7), date(2026, 9, 14), None)
    register_w1_views(spark, date(2026, 9, 7), date(2026, 9, 14))

    daily = spark.sql(read_sql("w1_daily.sql")).toPandas()
    features = spark.sql("SELECT * FROM w1_features").toPandas()

    assert list(daily.columns) == list(DAILY_COLUMNS)
    got = {(r.instance, r.day_index): {k: v for k, v in r._asdict().items() if k not in ("Index", "instance", "day_index") and v}
           for r in daily.itertuples()}
    assert got == {
        # instance 1: the duplicate counts once; the day before the start, day 7, the unknown type are out
        (1, 0): {"active_users": 2, "new_users": 2, "number_of_issues": 3, "issues_viewed": 2, "mobile_usage": 2},
        (1, 1): {"active_users": 1, "number_of_projects": 1, "sprint_started": 1, "mobile_usage": 1},
        (1, 6): {"active_users": 1, "new_users": 1, "number_of_invites": 4},
        (3, 0): {"active_users": 1, "new_users": 1, "watchers_added": 1, "at_mentions": 2},
        (3, 1): {"active_users": 1, "new_users": 1, "issues_commented": 3, "issues_assigned": 1},
        (3, 2): {"active_users": 1, "issues_updated": 6, "sprint_finished": 1},
        (3, 6): {"active_users": 1, "new_users": 1, "issues_completed": 2, "mobile_usage": 2},
        (4, 0): {"active_users": 1, "new_users": 1, "issues_updated": 5},
        (4, 1): {"active_users": 2, "new_users": 1, "issues_commented": 2},
    }
    assert sorted(features["instance"]) == [1, 2, 3, 4]
    assert daily_feature_mismatches(features, daily) == 0


# --------------------------------------------------------------------------------------------
# the asset


@pytest.mark.slow
def test_behavior_report_asset_on_simulated_data(tmp_path, spark):
    import dagster as dg

    from churn_assets.assets.report import REPORTS_DIR, behavior_report
    from churn_assets.features import compute_feature_table, write_weekly_csv
    from churn_assets.ml.explain import converter_reference
    from churn_assets.ml.model import train_churn_model
    from churn_assets.registry import read_training_rows, write_model
    from churn_assets.simulator import simulate
    from resources.spark import spark_resource
    from resources.storage import StorageRoot

    root = tmp_path / "root"
    simulate(root, instances=2500, weeks=2, as_of=date(2026, 12, 3), seed=8)  # cohorts 2026-10-12, 2026-10-19
    storage = StorageRoot(root=str(root))
    table = compute_feature_table(spark, storage, "instances_modeling", date(2026, 10, 12), date(2026, 10, 19), 30)
    write_weekly_csv(storage, table)
    frame, _ = read_training_rows(storage, ["2026-10-12", "2026-10-19"])
    trained = train_churn_model(frame, "v", params={**TALK_XGB_PARAMS, "n_estimators": 30, "n_jobs": 1},
                                threshold_folds=None)
    write_model(storage, "2026-10-19", trained, converter_reference(frame))

    result = dg.materialize(
        [behavior_report],
        resources={"spark": spark_resource(), "storage": storage},
        partition_key="2026-10-19",
    )

    assert result.success
    folder = root / REPORTS_DIR / "2026-10-19"
    for name in CHART_FILES.values():
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    assert (folder / SUMMARY_FILE).read_text().startswith("# Why evaluators buy")
    (materialization,) = result.asset_materializations_for_node("behavior_report")
    metadata = materialization.metadata
    assert metadata["evaluators"].value == len(frame)
    # the noisy simulated raw data (duplicates, early events, unknown types, orphans) add up day by day
    assert metadata["daily_feature_mismatches"].value == 0
    assert metadata["chart_activation_by_day"].value.startswith("![activation by day](data:image/png;base64,")
    # the correlation ranking resembles the talk's
    assert metadata["talk_rank_agreement"].value > 0.8


def test_daily_usage_reads_the_weeks_files_and_names_a_missing_one(storage):
    from churn_assets.assets.report import daily_usage
    from churn_assets.contract import W1_DAILY_USAGE_DIR
    from churn_assets.registry import MissingArtefact

    frame = modeling({"number_of_issues": [1, 2, 3]}, [1, 0, 1])
    frame["eval_start_date"] = ["2026-09-07", "2026-09-08", "2026-09-14"]
    frame["instance"] = [11, 12, 21]
    storage.write_csv(f"{W1_DAILY_USAGE_DIR}/2026-09-07.csv",
                      daily_rows([{"instance": 12, "day_index": 3}, {"instance": 11, "day_index": 0},
                                  {"instance": 99, "day_index": 0}]))
    with pytest.raises(MissingArtefact, match=f"{W1_DAILY_USAGE_DIR}/2026-09-14.csv does not exist"):
        daily_usage(storage, frame)
    storage.write_csv(f"{W1_DAILY_USAGE_DIR}/2026-09-14.csv", daily_rows([{"instance": 21, "day_index": 1}]))
    daily = daily_usage(storage, frame)
    assert list(daily.columns) == list(DAILY_COLUMNS)
    assert daily[["instance", "day_index"]].values.tolist() == [[11, 0], [12, 3], [21, 1]]  # sorted, 99 left out
