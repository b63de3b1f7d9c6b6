"""Cohort-week arithmetic shared by the simulator, the partitions and the assets.

A week is named by its Monday (UTC). A cohort week is labelled once the label window has closed for
its last evaluator (the one that started on Sunday), and its data for that day has landed.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from churn_assets.contract import DEFAULT_LABEL_WINDOW_DAYS, W1_DAYS


def parse_week(key: str) -> date:
    """`YYYY-MM-DD` of a Monday -> date. Raises ValueError naming the key otherwise."""
    try:
        day = date.fromisoformat(key[:10])
    except ValueError as exc:
        raise ValueError(f"week key {key!r} is not a YYYY-MM-DD date") from exc
    if day.weekday() != 0:
        raise ValueError(f"week key {key!r} is not a Monday")
    return day


def week_of(day: date | datetime) -> date:
    """The Monday of the week that holds `day`."""
    if isinstance(day, datetime):
        day = day.date()
    return day - timedelta(days=day.weekday())


def week_key(monday: date) -> str:
    return monday.isoformat()


def weeks_between(first: date, last: date) -> list[date]:
    """Mondays from week_of(first) to week_of(last), both included."""
    start, end = week_of(first), week_of(last)
    return [start + timedelta(weeks=i) for i in range((end - start).days // 7 + 1)]


def label_closed_on(cohort_week: date, label_window_days: int = DEFAULT_LABEL_WINDOW_DAYS) -> date:
    """First day on which every label of the cohort is known.

    The last evaluator starts on Sunday (Monday + 6); its window admits conversions dated up to
    Sunday + window - 1; the data of that day is complete the day after.
    """
    return cohort_week + timedelta(days=(W1_DAYS - 1) + label_window_days)


def is_labelled(cohort_week: date, as_of: date, label_window_days: int = DEFAULT_LABEL_WINDOW_DAYS) -> bool:
    return label_closed_on(cohort_week, label_window_days) <= as_of


def labelled_lag_weeks(label_window_days: int = DEFAULT_LABEL_WINDOW_DAYS) -> int:
    """How many whole weeks after a cohort week ends its labels may still be open.

    A weekly partition normally exists once its week has ended (Monday + 7 <= now). The training
    table's partitions are shifted back by this many weeks, so a partition exists only when
    `is_labelled` holds: Monday + 7 * (1 + lag) >= Monday + 6 + window.
    """
    return max(0, math.ceil((label_window_days - 1) / 7))


def latest_labelled_week(as_of: date, label_window_days: int = DEFAULT_LABEL_WINDOW_DAYS) -> date:
    """The newest cohort week whose training partition exists on `as_of`."""
    return week_of(as_of) - timedelta(weeks=1 + labelled_lag_weeks(label_window_days))
