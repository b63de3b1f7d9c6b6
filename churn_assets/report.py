"""The behaviour report: why evaluators who buy and those who leave differ, and how activation
moves over week 1. Plain pandas and matplotlib (headless, no pyplot): no Dagster, no storage.

Inputs
- `frame`: instances_modeling rows of the training window (contract columns, `retained` included);
- `daily`: one row per instance and day of week 1 with any usage (`DAILY_COLUMNS`, from
  sql/w1_daily.sql): `active_users` (distinct users active that day), `new_users` (users active for
  the first time in week 1 that day) and the day's sum of each event type (contract feature names)
  and of mobile events. Days without a row had no usage; instances of `frame` without any row
  had none in week 1.
- optionally the model (preprocessor and booster) for global importance (mean |SHAP|).

Outputs: tables (DataFrames, `BehaviorReport.to_dict()` for JSON), PNG charts (bytes) and a
one-page markdown summary that links the charts by file name.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from churn_assets.contract import (
    DEFAULT_LABEL_WINDOW_DAYS,
    EVENT_TYPE_FEATURES,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    W1_DAYS,
)
from churn_assets.ml.explain import FEATURE_LABELS, feature_label, mean_abs_shap
from churn_assets.ml.model import cohort_week_keys
from churn_assets.ml.preprocessing import labels, require_columns

# The talk's feature-label correlations (seed/talk.txt), for comparison.
TALK_CORRELATIONS: dict[str, float] = {
    "w1_agg_active_users": 0.56,
    "w1_active_users": 0.49,
    "w1_max_active_users": 0.49,
    "number_of_issues": 0.45,
    "number_of_invites": 0.45,
    "issues_updated": 0.44,
    "watchers_added": 0.44,
    "issues_viewed": 0.38,
    "number_of_projects": 0.35,
    "issues_assigned": 0.29,
    "issues_commented": 0.27,
    "sprint_started": 0.26,
    "mobile_usage": 0.19,
    "at_mentions": 0.15,
    "sprint_finished": 0.10,
    "issues_completed": 0.07,
}

# The talk's three charts: "Average Counts", "Average Activities" and "Average DAUs".
COUNT_FEATURES: tuple[str, ...] = ("number_of_projects", "number_of_issues", "number_of_invites")
ACTIVITY_FEATURES: tuple[str, ...] = tuple(
    f for f in FEATURE_COLUMNS if f not in COUNT_FEATURES and not f.startswith("w1_")
)

# The per-day frame (sql/w1_daily.sql).
DAILY_COUNT_COLUMNS: tuple[str, ...] = tuple(
    f for f in FEATURE_COLUMNS if f in set(EVENT_TYPE_FEATURES.values()) or f == "mobile_usage"
)
DAILY_COLUMNS: tuple[str, ...] = ("instance", "day_index", "active_users", "new_users", *DAILY_COUNT_COLUMNS)
DAILY_BEHAVIOURS: tuple[str, ...] = ("active_users", "new_users", *DAILY_COUNT_COLUMNS)
BEHAVIOUR_LABELS: dict[str, str] = {
    "active_users": "active users that day",
    "new_users": "users active for the first time",
    **{f: FEATURE_LABELS[f] for f in DAILY_COUNT_COLUMNS},
}
DAYS: tuple[int, ...] = tuple(range(1, W1_DAYS + 1))  # day 1 = the day the evaluation started

RETAINED, CHURNED = "retained", "churned"

CHART_FILES: dict[str, str] = {
    "average_activities": "average_activities.png",
    "average_counts": "average_counts.png",
    "average_daily_active_users": "average_daily_active_users.png",
    "feature_importance": "feature_importance.png",
    "cohorts_by_decile": "cohorts_by_decile.png",
    "activation_by_day": "activation_by_day.png",
}
SUMMARY_FILE = "summary.md"
TABLES_FILE = "report.json"
# Global importance (mean |SHAP|) is taken over at most this many rows (feature_importance).
IMPORTANCE_SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class ActivationRule:
    """An evaluator has activated by day d when, over days 1..d of its evaluation, at least
    `min_users` distinct users were active and each daily count in `min_counts` (a DAILY_COLUMNS
    count -> minimum) sums to at least its minimum.

    Default: a second active user and a first issue. On the default simulated data this splits
    evaluators sharply: by day 7 about 40 % have activated and they convert at about 48 %, against
    about 8 % for the rest; alone, "at least one issue" is too easy (78 % by day 7, converting at
    29 %), "3 users" too hard (22 %).
    """

    min_users: int = 2
    min_counts: Mapping[str, float] = field(default_factory=lambda: {"number_of_issues": 1})

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_counts", dict(self.min_counts))
        unknown = sorted(set(self.min_counts) - set(DAILY_COUNT_COLUMNS))
        if unknown:
            raise ValueError(f"activation counts must be among {DAILY_COUNT_COLUMNS}, got {unknown}")
        if self.min_users < 0 or any(v < 0 for v in self.min_counts.values()):
            raise ValueError("activation minimums must not be negative")

    def describe(self) -> str:
        parts = [f"at least {self.min_users} active user{'s' if self.min_users != 1 else ''}"] if self.min_users else []
        parts += [f"{_fmt_number(n)} or more {FEATURE_LABELS[c]}" for c, n in self.min_counts.items() if n]
        return " and ".join(parts) or "any evaluator (no condition)"

    def to_dict(self) -> dict[str, Any]:
        return {"min_users": self.min_users, "min_counts": dict(self.min_counts)}


# --------------------------------------------------------------------------------------------
# helpers


def _fmt_number(value: float) -> str:
    value = float(value)
    if value.is_integer():
        return f"{int(value):,}"
    return f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * value:.0f} %"


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _records(table: pd.DataFrame, index_name: str | None = None) -> list[dict[str, Any]]:
    data = table.reset_index() if index_name else table
    return [{k: _none_if_nan(v) for k, v in row.items()} for row in data.to_dict(orient="records")]


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r of two equal-length sequences; NaN when either is constant (no spread)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pearson needs two 1-D sequences of one length, got {a.shape} and {b.shape}")
    da, db = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    return float((da * db).sum() / denominator) if denominator > 0 else float("nan")


def _labelled(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    require_columns(frame, ["instance", LABEL_COLUMN], "training frame")
    if frame["instance"].duplicated().any():
        raise ValueError("training frame has duplicated instances")
    return frame, labels(frame).astype(bool)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce")


# --------------------------------------------------------------------------------------------
# (a) the talk's three charts, as tables


def group_means(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Mean of each feature among retained and among churned evaluators (missing values skipped).

    Index: the features; columns: retained, churned.
    """
    frame, retained = _labelled(frame)
    require_columns(frame, features, "training frame")
    values = frame.loc[:, list(features)].apply(pd.to_numeric, errors="coerce")
    table = pd.DataFrame({RETAINED: values[retained].mean(), CHURNED: values[~retained].mean()})
    table.index.name = "feature"
    return table


def dense_daily(daily: pd.DataFrame, instances: Sequence[int]) -> pd.DataFrame:
    """`daily` on the full grid of `instances` x days 0..6 (missing days are zero usage).

    Rows of instances not in `instances` are dropped. Index (instance, day_index).
    """
    require_columns(daily, DAILY_COLUMNS, "daily frame")
    rows = daily.loc[:, list(DAILY_COLUMNS)]
    days = pd.to_numeric(rows["day_index"], errors="coerce")
    if not days.between(0, W1_DAYS - 1).all():
        raise ValueError(f"daily frame: day_index must be within 0..{W1_DAYS - 1}")
    if rows.duplicated(["instance", "day_index"]).any():
        raise ValueError("daily frame has more than one row for an instance and day")
    counts = rows.set_index(["instance", "day_index"]).apply(pd.to_numeric, errors="coerce").fillna(0)
    grid = pd.MultiIndex.from_product([pd.unique(np.asarray(instances)), range(W1_DAYS)],
                                      names=["instance", "day_index"])
    return counts.reindex(grid, fill_value=0)


def _by_day(dense: pd.DataFrame, column: str) -> pd.DataFrame:
    """instance x day (1..7) table of one daily column."""
    table = dense[column].unstack("day_index")
    table.columns = [int(d) + 1 for d in table.columns]
    return table


def average_daily_active_users(frame: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Average active users on each day 1..7, retained vs churned. Index: day; columns: retained, churned."""
    frame, retained = _labelled(frame)
    users = _by_day(dense_daily(daily, frame["instance"]), "active_users").loc[frame["instance"].to_numpy()]
    table = pd.DataFrame({RETAINED: users[retained].mean(), CHURNED: users[~retained].mean()})
    table.index.name = "day"
    return table


# --------------------------------------------------------------------------------------------
# (b) correlations, (c) importance, (d) cohorts


def label_correlations(frame: pd.DataFrame, features: Sequence[str] = FEATURE_COLUMNS) -> pd.DataFrame:
    """Pearson correlation of each feature with `retained`, strongest first as in the talk's table
    (undefined correlations of constant features last), with the talk's value beside it.

    Columns: feature, correlation, talk_correlation. Rows with a missing value of a feature are
    left out of that feature's correlation.
    """
    frame, retained = _labelled(frame)
    require_columns(frame, features, "training frame")
    y = retained.astype(np.float64)
    records = []
    for feature in features:
        x = _numeric(frame, feature).to_numpy(dtype=np.float64)
        present = ~np.isnan(x)
        records.append((feature, pearson(x[present], y[present]) if present.any() else float("nan"),
                        TALK_CORRELATIONS.get(feature, float("nan"))))
    table = pd.DataFrame(records, columns=["feature", "correlation", "talk_correlation"])
    order = table["correlation"].fillna(-np.inf)
    return table.iloc[np.argsort(-order.to_numpy(), kind="stable")].reset_index(drop=True)


def talk_rank_agreement(correlations: pd.DataFrame) -> float:
    """Spearman rank correlation between this table's correlations and the talk's (shared features)."""
    both = correlations.dropna(subset=["correlation", "talk_correlation"])
    if len(both) < 2:
        return float("nan")
    return pearson(both["correlation"].rank().to_numpy(), both["talk_correlation"].rank().to_numpy())


def feature_importance(
    frame: pd.DataFrame, preprocessor, booster, max_rows: int = IMPORTANCE_SAMPLE_ROWS
) -> dict[str, float]:
    """Mean |SHAP| of each model feature over the rows of `frame`, largest first.

    Over a fixed random sample of `max_rows` rows when `frame` has more: exact TreeSHAP of the
    talk's 57,700 rows takes 2.4 s on two cores, and on the simulated window the mean over 20,000
    rows was within 0.004 (0.3 %) of the full mean for every feature, in the same order.
    """
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=0)
    return mean_abs_shap(booster, preprocessor.transform(frame), preprocessor.feature_names)


def decile_conversion(frame: pd.DataFrame, feature: str, bins: int = 10) -> pd.DataFrame:
    """Conversion rate by decile (or `bins` quantile groups) of `feature`.

    Group edges are the feature's quantiles at 0, 1/bins, ..., 1; a group holds the values from
    its lower edge up to, not including, the next edge (the last includes the maximum). Counts
    have many ties: equal edges collapse, so there may be fewer groups (a group of zeros, often).
    Rows with the feature missing are left out.

    Columns: group (1 = lowest values), low, high (smallest and largest value in the group),
    evaluators, converted, conversion_rate.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    frame, retained = _labelled(frame)
    require_columns(frame, [feature], "training frame")
    values = _numeric(frame, feature).to_numpy(dtype=np.float64)
    present = ~np.isnan(values)
    values, converted = values[present], retained[present]
    columns = ["group", "low", "high", "evaluators", "converted", "conversion_rate"]
    if values.size == 0:
        return pd.DataFrame(columns=columns)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    group = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(len(edges) - 2, 0))
    records = []
    for number, g in enumerate(np.unique(group), start=1):
        member = group == g
        records.append((number, float(values[member].min()), float(values[member].max()),
                        int(member.sum()), int(converted[member].sum()), float(converted[member].mean())))
    return pd.DataFrame(records, columns=columns)


# --------------------------------------------------------------------------------------------
# (e) activation over week 1


def activation_flags(frame: pd.DataFrame, daily: pd.DataFrame, rule: ActivationRule = ActivationRule()) -> pd.DataFrame:
    """instance x day (1..7) booleans: activated by the end of that day (`rule`)."""
    dense = dense_daily(daily, frame["instance"])
    cumulative = dense.groupby(level="instance", sort=False).cumsum()
    activated = _by_day(cumulative, "new_users") >= rule.min_users
    for column, minimum in rule.min_counts.items():
        activated &= _by_day(cumulative, column) >= minimum
    return activated.loc[frame["instance"].to_numpy()]


def activation_by_day(frame: pd.DataFrame, daily: pd.DataFrame, rule: ActivationRule = ActivationRule()) -> pd.DataFrame:
    """For each day d = 1..7: how many evaluators have activated by day d, their share, and the
    conversion rate of those activated and of the rest (NaN when a group is empty).

    Index: day; columns: evaluators, activated, activated_share, conversion_activated,
    conversion_not_activated.
    """
    frame, retained = _labelled(frame)
    flags = activation_flags(frame, daily, rule)
    records = []
    for day in DAYS:
        on = flags[day].to_numpy(dtype=bool)
        records.append((
            day,
            int(on.size),
            int(on.sum()),
            float(on.mean()) if on.size else float("nan"),
            float(retained[on].mean()) if on.any() else float("nan"),
            float(retained[~on].mean()) if (~on).any() else float("nan"),
        ))
    columns = ["day", "evaluators", "activated", "activated_share", "conversion_activated", "conversion_not_activated"]
    return pd.DataFrame(records, columns=columns).set_index("day")


def behaviour_by_day(frame: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Which behaviours on which day separate converters from the rest.

    For each day 1..7 and each daily behaviour (that day's value, not the running total): its
    mean among converters, among the others, and its Pearson correlation with `retained`.
    Sorted by day, then correlation (strongest first, undefined last).
    """
    frame, retained = _labelled(frame)
    dense = dense_daily(daily, frame["instance"])
    y = retained.astype(np.float64)
    records = []
    for behaviour in DAILY_BEHAVIOURS:
        table = _by_day(dense, behaviour).loc[frame["instance"].to_numpy()]
        for day in DAYS:
            x = table[day].to_numpy(dtype=np.float64)
            records.append((day, behaviour, float(x[retained].mean()) if retained.any() else float("nan"),
                            float(x[~retained].mean()) if (~retained).any() else float("nan"), pearson(x, y)))
    result = pd.DataFrame(records, columns=["day", "behaviour", "converters_mean", "others_mean", "correlation"])
    result["_order"] = result["correlation"].fillna(-np.inf)
    result = result.sort_values(["day", "_order"], ascending=[True, False], kind="mergesort")
    return result.drop(columns="_order").reset_index(drop=True)


def daily_feature_mismatches(frame: pd.DataFrame, daily: pd.DataFrame) -> int:
    """Instances whose daily rows do not add up to their week-1 features (the daily frame and
    the training table computed from different raw data); 0 when they agree."""
    dense = dense_daily(daily, frame["instance"])
    sums = dense.groupby(level="instance", sort=False).sum()
    expected = {
        "new_users": "w1_active_users",
        "active_users": "w1_agg_active_users",
        **{c: c for c in DAILY_COUNT_COLUMNS},
    }
    indexed = frame.set_index("instance")
    bad = np.zeros(len(indexed), dtype=bool)
    for daily_column, feature in expected.items():
        if feature in indexed:
            want = pd.to_numeric(indexed[feature], errors="coerce").to_numpy(dtype=np.float64)
            got = sums.loc[indexed.index, daily_column].to_numpy(dtype=np.float64)
            bad |= ~np.isnan(want) & (want != got)
    if "w1_max_active_users" in indexed:
        want = pd.to_numeric(indexed["w1_max_active_users"], errors="coerce").to_numpy(dtype=np.float64)
        got = dense["active_users"].groupby(level="instance", sort=False).max().loc[indexed.index].to_numpy(dtype=np.float64)
        bad |= ~np.isnan(want) & (want != got)
    return int(bad.sum())


# --------------------------------------------------------------------------------------------
# charts (matplotlib's object API with the Agg canvas: headless, no global pyplot state)

RETAINED_COLOUR, CHURNED_COLOUR, NEUTRAL_COLOUR = "#2a9d8f", "#e76f51", "#264653"
CHART_DPI = 90


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI, bbox_inches="tight")
    return buffer.getvalue()


def chart_group_means(table: pd.DataFrame, title: str, xlabel: str) -> bytes:
    """Horizontal grouped bars: each feature's mean for retained and churned evaluators."""
    figure = Figure(layout="constrained", figsize=(7.5, 0.55 * len(table) + 1.4))
    ax = figure.subplots()
    rows = np.arange(len(table))
    height = 0.38
    ax.barh(rows - height / 2, table[RETAINED], height, label="converted (retained)", color=RETAINED_COLOUR)
    ax.barh(rows + height / 2, table[CHURNED], height, label="did not convert (churned)", color=CHURNED_COLOUR)
    ax.set_yticks(rows, [feature_label(f) for f in table.index])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(figure)


def chart_daily_active_users(table: pd.DataFrame) -> bytes:
    figure = Figure(layout="constrained", figsize=(7.5, 4))
    ax = figure.subplots()
    ax.plot(table.index, table[RETAINED], marker="o", color=RETAINED_COLOUR, label="converted (retained)")
    ax.plot(table.index, table[CHURNED], marker="o", color=CHURNED_COLOUR, label="did not convert (churned)")
    ax.set_xticks(list(table.index), [f"day {d}" for d in table.index])
    ax.set_ylabel("average active users that day")
    ax.set_ylim(bottom=0)
    ax.set_title("Average daily active users in week 1")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(figure)


def chart_importance(importance: Mapping[str, float]) -> bytes:
    names = list(importance)
    figure = Figure(layout="constrained", figsize=(7.5, 0.45 * len(names) + 1.4))
    ax = figure.subplots()
    ax.barh(np.arange(len(names)), [importance[n] for n in names], color=NEUTRAL_COLOUR)
    ax.set_yticks(np.arange(len(names)), [feature_label(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("mean |SHAP| (average effect on the log-odds of converting)")
    ax.set_title("What the model looks at (global feature importance)")
    ax.grid(axis="x", alpha=0.3)
    return _png(figure)


def _group_label(row: pd.Series) -> str:
    low, high = _fmt_number(row["low"]), _fmt_number(row["high"])
    return low if low == high else f"{low}-{high}"


def chart_cohorts(cohorts: Mapping[str, pd.DataFrame], base_rate: float) -> bytes:
    features = list(cohorts)
    columns = 2 if len(features) > 1 else 1
    rows = max(1, math.ceil(len(features) / columns))
    figure = Figure(layout="constrained", figsize=(5.2 * columns, 3.4 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax, feature in zip(axes, features):
        table = cohorts[feature]
        positions = np.arange(len(table))
        ax.bar(positions, 100 * table["conversion_rate"], color=NEUTRAL_COLOUR)
        ax.axhline(100 * base_rate, color=CHURNED_COLOUR, linestyle="--", linewidth=1, label="all evaluators")
        ax.set_xticks(positions, [_group_label(r) for _, r in table.iterrows()], rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("% converted")
        ax.set_title(feature_label(feature), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(features):]:
        ax.set_visible(False)
    if features:
        axes[0].legend(fontsize=8)
    figure.suptitle("Conversion rate by decile of each top feature (value range on the axis)")
    return _png(figure)


def chart_activation(activation: pd.DataFrame, rule: ActivationRule) -> bytes:
    figure = Figure(layout="constrained", figsize=(11, 4))
    left, right = figure.subplots(1, 2)
    days = list(activation.index)
    left.plot(days, 100 * activation["activated_share"], marker="o", color=NEUTRAL_COLOUR)
    left.set_ylim(0, 100)
    left.set_xticks(days, [f"day {d}" for d in days])
    left.set_ylabel("% of evaluators activated by that day")
    left.set_title("Activation over week 1")
    left.grid(alpha=0.3)
    width = 0.38
    positions = np.arange(len(days))
    right.bar(positions - width / 2, 100 * activation["conversion_activated"].fillna(0), width,
              color=RETAINED_COLOUR, label="activated by that day")
    right.bar(positions + width / 2, 100 * activation["conversion_not_activated"].fillna(0), width,
              color=CHURNED_COLOUR, label="not (yet) activated")
    right.set_xticks(positions, [f"day {d}" for d in days])
    right.set_ylim(0, 100)
    right.set_ylabel("% converted")
    right.set_title("Conversion rate: activated vs not")
    right.legend(fontsize=8)
    right.grid(axis="y", alpha=0.3)
    figure.suptitle(f"Activated = {rule.describe()}", fontsize=10)
    return _png(figure)


# --------------------------------------------------------------------------------------------
# the report


@dataclass
class BehaviorReport:
    evaluators: int
    conversion_rate: float
    cohort_weeks: tuple[str, ...]
    label_window_days: int
    activities: pd.DataFrame
    counts: pd.DataFrame
    daily_active_users: pd.DataFrame
    correlations: pd.DataFrame
    talk_rank_agreement: float
    importance: dict[str, float] | None
    top_features: list[str]
    cohorts: dict[str, pd.DataFrame]
    activation_rule: ActivationRule
    activation: pd.DataFrame
    behaviour_by_day: pd.DataFrame
    daily_feature_mismatches: int
    charts: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG bytes

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report, JSON-ready (NaN as null)."""
        return {
            "evaluators": self.evaluators,
            "conversion_rate": self.conversion_rate,
            "cohort_weeks": list(self.cohort_weeks),
            "label_window_days": self.label_window_days,
            "average_activities": _records(self.activities, "feature"),
            "average_counts": _records(self.counts, "feature"),
            "average_daily_active_users": _records(self.daily_active_users, "day"),
            "correlations": _records(self.correlations),
            "talk_rank_agreement": _none_if_nan(self.talk_rank_agreement),
            "importance": self.importance,
            "top_features": self.top_features,
            "cohorts": {f: _records(t) for f, t in self.cohorts.items()},
            "activation_rule": self.activation_rule.to_dict(),
            "activation": _records(self.activation, "day"),
            "behaviour_by_day": _records(self.behaviour_by_day),
            "daily_feature_mismatches": self.daily_feature_mismatches,
            "charts": sorted(self.charts),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def markdown(self, image_links: Mapping[str, str] | None = None) -> str:
        """The one-page summary; charts are linked by file name unless `image_links` maps a file
        name to another target (e.g. a data: URI)."""
        return summary_markdown(self, image_links)

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write the PNGs, summary.md and report.json into `folder`; file name -> path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, data in {**self.charts, SUMMARY_FILE: self.markdown().encode("utf-8"),
                           TABLES_FILE: self.to_json().encode("utf-8")}.items():
            path = folder / name
            path.write_bytes(data)
            written[name] = path
        return written


def build_behavior_report(
    frame: pd.DataFrame,
    daily: pd.DataFrame,
    preprocessor=None,
    booster=None,
    rule: ActivationRule = ActivationRule(),
    top_n: int = 4,
    bins: int = 10,
    label_window_days: int = DEFAULT_LABEL_WINDOW_DAYS,
    charts: bool = True,
) -> BehaviorReport:
    """The whole report for the training-window rows `frame` and their per-day usage `daily`.

    Top features (for the cohorts) are the model's most important ones when a model is given,
    else the most correlated.
    """
    frame, retained = _labelled(frame)
    if frame.empty:
        raise ValueError("the behaviour report needs at least one evaluator")
    require_columns(frame, FEATURE_COLUMNS, "training frame")
    correlations = label_correlations(frame)
    importance = None
    if preprocessor is not None and booster is not None:
        importance = feature_importance(frame, preprocessor, booster)
        ranking = list(importance)
    else:
        ranking = correlations.dropna(subset=["correlation"])["feature"].tolist()
    top = ranking[:top_n]
    weeks: tuple[str, ...] = ()
    if "eval_start_date" in frame:
        weeks = tuple(sorted(set(cohort_week_keys(frame))))
    report = BehaviorReport(
        evaluators=len(frame),
        conversion_rate=float(retained.mean()),
        cohort_weeks=weeks,
        label_window_days=label_window_days,
        activities=group_means(frame, ACTIVITY_FEATURES),
        counts=group_means(frame, COUNT_FEATURES),
        daily_active_users=average_daily_active_users(frame, daily),
        correlations=correlations,
        talk_rank_agreement=talk_rank_agreement(correlations),
        importance=importance,
        top_features=top,
        cohorts={f: decile_conversion(frame, f, bins) for f in top},
        activation_rule=rule,
        activation=activation_by_day(frame, daily, rule),
        behaviour_by_day=behaviour_by_day(frame, daily),
        daily_feature_mismatches=daily_feature_mismatches(frame, daily),
    )
    if charts:
        report.charts = render_charts(report)
    return report


def render_charts(report: BehaviorReport) -> dict[str, bytes]:
    pngs = {
        CHART_FILES["average_activities"]: chart_group_means(
            report.activities, "Average activities in week 1", "average per evaluator"),
        CHART_FILES["average_counts"]: chart_group_means(
            report.counts, "Average counts in week 1", "average per evaluator"),
        CHART_FILES["average_daily_active_users"]: chart_daily_active_users(report.daily_active_users),
        CHART_FILES["cohorts_by_decile"]: chart_cohorts(report.cohorts, report.conversion_rate),
        CHART_FILES["activation_by_day"]: chart_activation(report.activation, report.activation_rule),
    }
    if report.importance:
        pngs[CHART_FILES["feature_importance"]] = chart_importance(report.importance)
    return pngs


# --------------------------------------------------------------------------------------------
# the one-page summary


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _ratio(a: float, b: float) -> str:
    if pd.isna(a) or pd.isna(b) or b <= 0:
        return ""
    return f" ({a / b:.1f} times as often)"


def summary_markdown(report: BehaviorReport, image_links: Mapping[str, str] | None = None) -> str:
    links = dict(image_links or {})
    weeks = report.cohort_weeks
    span = f"cohort weeks {weeks[0]} to {weeks[-1]}" if weeks else "the training window"
    lines = [
        f"# Why evaluators buy: behaviour report, {span}",
        "",
        f"**{report.evaluators:,} evaluators** started an evaluation in {span} "
        f"({len(weeks)} week{'s' if len(weeks) != 1 else ''}); **{_pct(report.conversion_rate)}** "
        f"became paying customers within {report.label_window_days} days.",
        "",
        "## Converters and the rest in week 1",
    ]
    means = pd.concat([report.counts, report.activities])
    everyone = group_means_all(report)
    if everyone is not None:
        lines.append(everyone)
    correlated = report.correlations.dropna(subset=["correlation"])
    if len(correlated):
        strongest = [f"{feature_label(r.feature)} ({r.correlation:.2f})" for r in correlated.head(3).itertuples()]
        weakest = [feature_label(f) for f in correlated.tail(2)["feature"]]
        lines.append(f"- The behaviours most linked with buying (correlation with converting) are "
                     f"{_join(strongest)}; the least linked are {_join(weakest)}.")
        if not pd.isna(report.talk_rank_agreement):
            lines.append(f"- This ranking agrees with the source talk's table with a rank correlation of "
                         f"{report.talk_rank_agreement:.2f} (1 = the same order).")
    if len(means):
        gaps = (means[RETAINED] / means[CHURNED].where(means[CHURNED] > 0)).dropna().sort_values(ascending=False)
        if len(gaps):
            parts = [f"{feature_label(f)} ({_fmt_number(round(means.at[f, RETAINED], 1))} vs "
                     f"{_fmt_number(round(means.at[f, CHURNED], 1))})" for f in gaps.index[:3]]
            lines.append(f"- The biggest gaps, average per evaluator (converters vs the others): {_join(parts)}.")
    lines += ["", "## What the model looks at"]
    if report.importance:
        named = [feature_label(f) for f in list(report.importance)[:3]]
        lines.append(f"- The model's scores move most with {_join(named)} (mean absolute SHAP value).")
    else:
        lines.append("- No model was given: importance not computed.")
    lines += ["", "## Behaviour cohorts"]
    for feature, table in report.cohorts.items():
        if len(table) < 2:
            continue
        low, high = table.iloc[0], table.iloc[-1]
        lines.append(
            f"- {feature_label(feature).capitalize()}: evaluators in the top group "
            f"({_group_label(high)}) converted at {_pct(high['conversion_rate'])}, those in the bottom group "
            f"({_group_label(low)}) at {_pct(low['conversion_rate'])}."
        )
    lines += ["", "## Activation over week 1", f"- *Activated* means {report.activation_rule.describe()} since the evaluation started."]
    activation = report.activation
    shares = [f"day {d}: {_pct(activation.at[d, 'activated_share'])}" for d in (1, 3, 7) if d in activation.index]
    lines.append(f"- Share of evaluators activated by {_join(shares)}.")
    last = activation["activated_share"].iloc[-1]
    if last > 0:
        settled = next(int(d) for d, s in activation["activated_share"].items() if s >= 0.9 * last)
        lines.append(f"- Nine in ten of the evaluators who activate in week 1 have done so by day {settled}.")
    for day in (1, activation.index[-1]):
        row = activation.loc[day]
        lines.append(
            f"- Evaluators activated by day {day} converted at {_pct(row['conversion_activated'])}, the others at "
            f"{_pct(row['conversion_not_activated'])}{_ratio(row['conversion_activated'], row['conversion_not_activated'])}."
        )
    separating = report.behaviour_by_day.dropna(subset=["correlation"])
    if len(separating):
        lines += ["", "What separates converters from the rest on each day: that day's average, converters vs "
                  "the others (r: correlation with converting).", "",
                  "| day | active users that day | product behaviour that separates most |", "|---|---|---|"]
        for day, rows in separating.groupby("day", sort=True):
            team = rows[rows["behaviour"] == "active_users"]
            product = rows[rows["behaviour"].isin(DAILY_COUNT_COLUMNS)]
            team_cell = (f"{team.iloc[0]['converters_mean']:.1f} vs {team.iloc[0]['others_mean']:.1f} "
                         f"(r {team.iloc[0]['correlation']:.2f})") if len(team) else ""
            product_cell = (f"{BEHAVIOUR_LABELS[product.iloc[0]['behaviour']]}: {product.iloc[0]['converters_mean']:.1f} vs "
                            f"{product.iloc[0]['others_mean']:.1f} (r {product.iloc[0]['correlation']:.2f})") if len(product) else ""
            lines.append(f"| {day} | {team_cell} | {product_cell} |")
    if report.daily_feature_mismatches:
        lines += ["", f"> Note: for {report.daily_feature_mismatches} evaluators the day-by-day usage does not add "
                  "up to their week-1 features (the day-by-day file and the training table come from different runs)."]
    lines += ["", "## Charts", ""]
    titles = {
        "average_counts": "Average counts", "average_activities": "Average activities",
        "average_daily_active_users": "Average daily active users", "feature_importance": "Feature importance",
        "cohorts_by_decile": "Conversion by decile", "activation_by_day": "Activation by day",
    }
    for key in ("average_counts", "average_activities", "average_daily_active_users", "feature_importance",
                "cohorts_by_decile", "activation_by_day"):
        name = CHART_FILES[key]
        if name in report.charts:
            lines += [f"![{titles[key]}]({links.get(name, name)})", ""]
    return "\n".join(lines).rstrip() + "\n"


def group_means_all(report: BehaviorReport) -> str | None:
    """The team sentence: active users and user-days, converters vs the rest (from the DAU table)."""
    dau = report.daily_active_users
    if dau.empty:
        return None
    converters, others = dau[RETAINED].sum(), dau[CHURNED].sum()
    if pd.isna(converters) or pd.isna(others):
        return None
    return (f"- Converters worked as a team: {_fmt_number(round(converters, 1))} user-days of activity in week 1 on "
            f"average (the sum over the 7 days of that day's active users), against {_fmt_number(round(others, 1))} "
            f"for the others; on day 1 they had {dau[RETAINED].iloc[0]:.1f} active users against "
            f"{dau[CHURNED].iloc[0]:.1f}.")
