"""Pipeline settings that shape the asset graph itself, read from the environment once at load.

- CHURN_FIRST_WEEK: Monday of the first cohort week the platform knows (default 2026-01-05).
- CHURN_LABEL_WINDOW_DAYS: days after the evaluation start in which a conversion counts as
  retained (default 30, the contract's). A cohort's training partition exists only once its
  label window has closed.
- CHURN_STEP_RETRIES / CHURN_STEP_RETRY_DELAY_SECONDS: how often, and after how long (doubling,
  with jitter), Dagster re-runs a step that failed (default 2 retries, 10 s). The storage client
  already retries each request (resources/storage.py); a step retry covers what outlasts those
  attempts, e.g. an S3 endpoint down for a minute. Bad input never retries (dg.Failure with
  allow_retries=False): it would fail the same way again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from churn_assets.contract import DEFAULT_LABEL_WINDOW_DAYS
from churn_assets.weeks import parse_week

DEFAULT_FIRST_WEEK = "2026-01-05"
DEFAULT_STEP_RETRIES = 2
DEFAULT_STEP_RETRY_DELAY_SECONDS = 10.0


def _number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class PipelineSettings:
    first_week: date
    label_window_days: int
    step_retries: int = DEFAULT_STEP_RETRIES
    step_retry_delay_seconds: float = DEFAULT_STEP_RETRY_DELAY_SECONDS

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
        return cls(
            first_week=first_week,
            label_window_days=window_days,
            step_retries=int(_number("CHURN_STEP_RETRIES", DEFAULT_STEP_RETRIES, int, 0)),
            step_retry_delay_seconds=_number("CHURN_STEP_RETRY_DELAY_SECONDS", DEFAULT_STEP_RETRY_DELAY_SECONDS, float, 0),
        )

    def step_retry_policy(self) -> "dg.RetryPolicy":
        """The retry policy of every asset step (see the module's docstring)."""
        import dagster as dg

        return dg.RetryPolicy(
            max_retries=self.step_retries,
            delay=self.step_retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        )


SETTINGS = PipelineSettings.from_env()
