"""Weekly partitions by cohort week (Monday to Sunday, UTC)."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from churn_assets.settings import SETTINGS
from churn_assets.weeks import labelled_lag_weeks

# Cohorts whose week 1 has ended, plus the week in progress (scored mid-week as usage lands).
cohort_weeks = dg.WeeklyPartitionsDefinition(
    start_date=SETTINGS.first_week.isoformat(), day_offset=1, end_offset=1, timezone="UTC"
)

# Cohorts whose label window has closed for every evaluator: only these may train or evaluate.
LABEL_LAG_WEEKS = labelled_lag_weeks(SETTINGS.label_window_days)
labelled_weeks = dg.WeeklyPartitionsDefinition(
    start_date=SETTINGS.first_week.isoformat(), day_offset=1, end_offset=-LABEL_LAG_WEEKS, timezone="UTC"
)


def window_weeks(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """(first, last) cohort Mondays of the partitions this run materializes, both inclusive."""
    window = context.partition_time_window
    return window.start.date(), window.end.date() - timedelta(weeks=1)
