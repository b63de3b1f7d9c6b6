"""Segments for marketing, and the save list: who to contact first.

With `t` the model's decision threshold (predicted to convert when probability >= t), an evaluator
with probability `p` is, in this order:

| segment | rule | meaning |
|---|---|---|
| `likely_to_convert` | p >= t + swing_band | predicted to convert, comfortably |
| `might_swing` | t <= p < t + swing_band | predicted to convert, but close to the line |
| `at_risk_worth_saving` | floor <= p < t and engagement >= min_engagement | predicted not to convert, but close enough and active enough that outreach has a chance |
| `unlikely_to_convert` | everything else | predicted not to convert, and far from it or never active |

where floor = save_floor_ratio * t and engagement is the evaluator's `w1_active_users` (configurable).
A missing engagement value counts as not engaged.

Defaults and why (simulated data, 12,000 evaluators, XGBoost trained on 4 cohort weeks and scored
on the next 2, threshold about 0.33):
- swing_band 0.15: p in [t, t + 0.15) holds about 4 % of evaluators, converting at about 47 %,
  a coin flip; above it they convert at about 77 %.
- save_floor_ratio 0.5: p in [t/2, t) holds about 11 % of evaluators, converting at about 24 %
  without outreach (the overall rate); below the floor they convert at about 7 %. Inside the band
  the number of active users changes little (22-33 %), and below it evaluators with 2+ active
  users still convert at only about 9 %: the probability already weighs engagement, so engagement
  is a requirement, not an alternative way in.
- min_engagement 1: at least one person used the product in week 1: somebody to talk to.

Expected value of outreach (the save list's ranking): outreach is assumed to add a fixed
`outreach_lift_log_odds` (default 0.5, about x1.65 on the odds) to an evaluator's log-odds of
converting, so

    EV(p) = value_per_conversion * (sigmoid(logit(p) + lift) - p)

the expected extra conversions (times their value) from contacting that evaluator. EV is 0 at
p = 0 and p = 1, rises with p up to p* = sigmoid(-lift / 2) (0.44 for the default) and falls after:
the evaluators closest to the fence gain most. Nobody has measured the real uplift of outreach;
the lift only sets p*, the ranking is by closeness to it. Ties go to the lower instance id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

AT_RISK_WORTH_SAVING = "at_risk_worth_saving"
MIGHT_SWING = "might_swing"
LIKELY_TO_CONVERT = "likely_to_convert"
UNLIKELY_TO_CONVERT = "unlikely_to_convert"
SEGMENTS: tuple[str, ...] = (AT_RISK_WORTH_SAVING, MIGHT_SWING, LIKELY_TO_CONVERT, UNLIKELY_TO_CONVERT)
SAVE_LIST_SEGMENTS: tuple[str, ...] = (AT_RISK_WORTH_SAVING, MIGHT_SWING)

# Where the weekly save list lives under the storage root: models/save_list/v0/WEEK.csv.
SAVE_LIST_DIR = "models/save_list/v0"


@dataclass(frozen=True)
class SegmentConfig:
    """The segment rules and the outreach model; see the module docstring for the defaults."""

    swing_band: float = 0.15
    save_floor_ratio: float = 0.5
    engagement_feature: str = "w1_active_users"
    min_engagement: float = 1.0
    outreach_lift_log_odds: float = 0.5
    value_per_conversion: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.swing_band <= 1.0:
            raise ValueError(f"swing_band must be within [0, 1], got {self.swing_band}")
        if not 0.0 <= self.save_floor_ratio <= 1.0:
            raise ValueError(f"save_floor_ratio must be within [0, 1], got {self.save_floor_ratio}")
        if not self.outreach_lift_log_odds > 0:
            raise ValueError(f"outreach_lift_log_odds must be positive, got {self.outreach_lift_log_odds}")
        if not self.value_per_conversion > 0:
            raise ValueError(f"value_per_conversion must be positive, got {self.value_per_conversion}")

    def floor(self, threshold: float) -> float:
        return self.save_floor_ratio * threshold


def _probabilities(probability) -> np.ndarray:
    values = np.asarray(probability, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"probabilities must be one-dimensional, got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return values


def assign_segments(probability, engagement, threshold: float, config: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """Each evaluator's segment (object array of str), by the rules in the module docstring."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    p = _probabilities(probability)
    engaged = np.asarray(pd.to_numeric(pd.Series(np.asarray(engagement, dtype=object)), errors="coerce"), dtype=np.float64)
    if engaged.shape != p.shape:
        raise ValueError(f"{p.size} probabilities but {engaged.size} engagement values")
    engaged = np.nan_to_num(engaged, nan=-np.inf) >= config.min_engagement
    predicted = p >= threshold
    segments = np.full(p.shape, UNLIKELY_TO_CONVERT, dtype=object)
    segments[predicted] = LIKELY_TO_CONVERT
    segments[predicted & (p < threshold + config.swing_band)] = MIGHT_SWING
    segments[~predicted & (p >= config.floor(threshold)) & engaged] = AT_RISK_WORTH_SAVING
    return segments


def expected_value(probability, config: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """EV of outreach: value * (sigmoid(logit(p) + lift) - p), exact at p = 0 and p = 1."""
    p = _probabilities(probability)
    boost = np.exp(config.outreach_lift_log_odds)
    contacted = p * boost / (1.0 - p + p * boost)
    return config.value_per_conversion * (contacted - p)


def save_list(predictions: pd.DataFrame, config: SegmentConfig = SegmentConfig()) -> pd.DataFrame:
    """The evaluators to contact: the two actionable segments, best expected value first.

    `predictions` needs instance, retain_probability and segment (`scoring.score_with_reasons`).
    Columns: rank (1..n), instance, eval_start_date, segment, retain_probability,
    expected_value, the engagement feature, top_reasons and model_version (those present).
    Sorted by expected_value descending, then instance ascending.
    """
    missing = [c for c in ("instance", "retain_probability", "segment") if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions frame is missing column(s): {', '.join(missing)}")
    rows = predictions[predictions["segment"].isin(SAVE_LIST_SEGMENTS)].copy()
    rows["expected_value"] = expected_value(rows["retain_probability"].to_numpy(), config)
    rows = rows.sort_values(["expected_value", "instance"], ascending=[False, True], kind="mergesort")
    rows.insert(0, "rank", np.arange(1, len(rows) + 1, dtype=np.int64))
    wanted = ["rank", "instance", "eval_start_date", "segment", "retain_probability", "expected_value",
              config.engagement_feature, "top_reasons", "model_version"]
    return rows[[c for c in dict.fromkeys(wanted) if c in rows.columns]].reset_index(drop=True)
