"""Pipeline settings that shape the asset graph itself, read from the environment once at load.

- CHURN_FIRST_WEEK: Monday of the first cohort week the platform knows (default 2026-01-05).
- CHURN_LABEL_WINDOW_DAYS: days after the evaluation start in which a conversion counts as
  retained (default 30, the contract's). A cohort's training partition exists only once its
  label window has closed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from churn_assets.contract import DEFAULT_LABEL_WINDOW_DAYS
from churn_assets.weeks import parse_week

DEFAULT_FIRST_WEEK = "2026-01-05"


@dataclass(frozen=True)
class PipelineSettings:
    first_week: date
    label_window_days: int

    @classmethod
    def from_env(cls) -> "PipelineSettings":
        first = os.environ.get("CHURN_FIRST_WEEK", DEFAULT_FIRST_WEEK)
        window = os.environ.get("CHURN_LABEL_WINDOW_DAYS", str(DEFAULT_LABEL_WINDOW_DAYS))
        try:
            window_days = int(window)
        except ValueError as exc:
            raise ValueError(f"CHURN_LABEL_WINDOW_DAYS={window!r} is not a whole number of days") from exc
        if window_days < 1:
            raise ValueError(f"CHURN_LABEL_WINDOW_DAYS={window_days} must be at least 1")
        try:
            first_week = parse_week(first)
        except ValueError as exc:
            raise ValueError(f"CHURN_FIRST_WEEK: {exc}") from exc
        return cls(first_week=first_week, label_window_days=window_days)


SETTINGS = PipelineSettings.from_env()
