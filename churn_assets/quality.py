"""Data-quality checks of the platform's tables, one cohort week at a time: pure logic, no Dagster.

Every check takes pandas frames (and small dicts) and returns a `CheckOutcome` whose message names
the table, the partition and the column at fault, e.g.
`instances_modeling week=2026-09-07: column 'number_of_issues' has 3 negative values`.
churn_assets/checks.py wires them to the assets as Dagster asset checks.

Thresholds (`QualityThresholds`) come from environment variables, read each time a check runs, so
an operator changes them without a code change and every result's metadata records the values used:

| variable | default | check |
|---|---|---|
| CHURN_DQ_RETAINED_RATE_MIN / _MAX | 0.05 / 0.60 | positive rate of `retained` (instances_modeling) |
| CHURN_DQ_MAX_EXCLUDED_SHARE | 0.05 | share of a week's raw rows one exclusion kind may take |
| CHURN_DQ_PSI_WARN / CHURN_DQ_PSI_ERROR | 0.10 / 0.25 | feature drift of instances_w1 (PSI) |
| CHURN_DQ_PSI_BINS | 10 | reference quantile bins of the PSI |
| CHURN_DQ_DRIFT_MIN_ROWS | 50 | below this many scored rows drift is at most a warning |
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from churn_assets.contract import FEATURE_COLUMNS, W1_DAYS
from churn_assets.weeks import parse_week

Severity = Literal["ERROR", "WARN"]
ERROR: Severity = "ERROR"
WARN: Severity = "WARN"

# Per-week exclusion counts (sql/usage_exclusions.sql), written by the feature assets.
QUALITY_DIR = "models/quality/v0"
EXAMPLES = 5  # example ids named in a message

# exclusion kind -> the count it is a share of
EXCLUSION_DENOMINATORS: dict[str, str] = {
    "duplicate_instance_rows": "instance_rows",
    "orphan_events": "event_rows_to_day_6",
    "invalid_events": "event_rows_to_day_6",
    "events_before_eval_start": "event_rows_to_day_6",
    "unknown_event_type_events": "event_rows_to_day_6",
    "duplicate_events": "event_rows_to_day_6",
}
EXCLUSION_COUNTS: tuple[str, ...] = ("instance_rows", "event_rows_to_day_6", *EXCLUSION_DENOMINATORS)


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: Severity
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# thresholds


THRESHOLD_ENV: dict[str, str] = {
    "retained_rate_min": "CHURN_DQ_RETAINED_RATE_MIN",
    "retained_rate_max": "CHURN_DQ_RETAINED_RATE_MAX",
    "max_excluded_share": "CHURN_DQ_MAX_EXCLUDED_SHARE",
    "psi_warn": "CHURN_DQ_PSI_WARN",
    "psi_error": "CHURN_DQ_PSI_ERROR",
    "psi_bins": "CHURN_DQ_PSI_BINS",
    "drift_min_rows": "CHURN_DQ_DRIFT_MIN_ROWS",
}


@dataclass(frozen=True)
class QualityThresholds:
    retained_rate_min: float = 0.05
    retained_rate_max: float = 0.60
    max_excluded_share: float = 0.05
    psi_warn: float = 0.10
    psi_error: float = 0.25
    psi_bins: int = 10
    drift_min_rows: int = 50

    def __post_init__(self) -> None:
        if not 0 <= self.retained_rate_min <= self.retained_rate_max <= 1:
            raise ValueError(
                f"retained rate band {self.retained_rate_min}..{self.retained_rate_max} must satisfy "
                f"0 <= {THRESHOLD_ENV['retained_rate_min']} <= {THRESHOLD_ENV['retained_rate_max']} <= 1"
            )
        if not 0 <= self.max_excluded_share <= 1:
            raise ValueError(f"{THRESHOLD_ENV['max_excluded_share']}={self.max_excluded_share} must be in [0, 1]")
        if not 0 <= self.psi_warn <= self.psi_error:
            raise ValueError(
                f"{THRESHOLD_ENV['psi_warn']}={self.psi_warn} and {THRESHOLD_ENV['psi_error']}={self.psi_error} "
                "must satisfy 0 <= warn <= error"
            )
        if self.psi_bins < 2:
            raise ValueError(f"{THRESHOLD_ENV['psi_bins']}={self.psi_bins} must be at least 2")
        if self.drift_min_rows < 0:
            raise ValueError(f"{THRESHOLD_ENV['drift_min_rows']}={self.drift_min_rows} must be >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QualityThresholds:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, variable in THRESHOLD_ENV.items():
            raw = environ.get(variable, "").strip()
            if not raw:
                continue
            kind = int if name in ("psi_bins", "drift_min_rows") else float
            try:
                values[name] = kind(raw)
            except ValueError as exc:
                raise ValueError(f"{variable}={raw!r} is not a {'whole number' if kind is int else 'number'}") from exc
        return cls(**values)

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# helpers


def where(table: str, week: str) -> str:
    return f"{table} week={week}"


def _examples(values: Iterable[Any], limit: int = EXAMPLES) -> list[Any]:
    out = []
    for value in sorted(set(values), key=lambda v: (str(type(v)), v)):
        out.append(value.item() if isinstance(value, np.generic) else value)
        if len(out) == limit:
            break
    return out


def _columns_text(counts: Mapping[str, int], what: str) -> str:
    """`column 'a' has 3 <what>` or `columns 'a' (3), 'b' (1) have <what>`."""
    if len(counts) == 1:
        ((column, n),) = counts.items()
        return f"column '{column}' has {n} {what}"
    return "columns " + ", ".join(f"'{c}' ({n})" for c, n in counts.items()) + f" have {what}"


def _outcome(passed: bool, severity: Severity, message: str, **metadata: Any) -> CheckOutcome:
    return CheckOutcome(passed=passed, severity=severity, message=message, metadata=metadata)


# --------------------------------------------------------------------------------------------
# 1. schema and column order


def check_schema(
    table: str, week: str, frame: pd.DataFrame, expected: Sequence[str], *, prefix: bool = False
) -> CheckOutcome:
    """The columns are exactly `expected` in order (`prefix`: they start with `expected`)."""
    actual = [str(c) for c in frame.columns]
    expected = list(expected)
    head = f"{where(table, week)}:"
    missing = [c for c in expected if c not in actual]
    extra = [] if prefix else [c for c in actual if c not in expected]
    problems = []
    if missing:
        problems.append(", ".join(f"column '{c}' is missing" for c in missing))
    if extra:
        problems.append(", ".join(f"column '{c}' is not in the contract" for c in extra))
    if not problems:
        compared = actual[: len(expected)]
        for position, (found, wanted) in enumerate(zip(compared, expected), start=1):
            if found != wanted:
                problems.append(
                    f"column '{found}' is at position {position}, where the contract puts '{wanted}' "
                    "(columns out of contract order)"
                )
                break
    kind = "start with" if prefix else "are exactly"
    if problems:
        return _outcome(False, ERROR, f"{head} {'; '.join(problems)}", columns=actual, expected=expected)
    return _outcome(True, ERROR, f"{head} the columns {kind} the contract's, in order", columns=actual)


# --------------------------------------------------------------------------------------------
# 2. nulls


def check_no_nulls(table: str, week: str, frame: pd.DataFrame, columns: Sequence[str] | None = None) -> CheckOutcome:
    """No null (or empty) value in `columns` (default: every column)."""
    columns = [c for c in (columns or frame.columns) if c in frame.columns]
    counts = {c: int(frame[c].isna().sum()) for c in columns}
    failing = {c: n for c, n in counts.items() if n}
    if failing:
        return _outcome(
            False, ERROR, f"{where(table, week)}: {_columns_text(failing, 'null values')}",
            null_counts=failing, rows=len(frame),
        )
    return _outcome(True, ERROR, f"{where(table, week)}: no null values in {len(columns)} columns", rows=len(frame))


# --------------------------------------------------------------------------------------------
# 3. counts are whole and non-negative


def check_non_negative_counts(
    table: str, week: str, frame: pd.DataFrame, columns: Sequence[str] = FEATURE_COLUMNS
) -> CheckOutcome:
    """Every feature is a count: a whole number >= 0 (nulls are check_no_nulls' business)."""
    problems: list[str] = []
    negatives: dict[str, int] = {}
    for column in columns:
        if column not in frame.columns:
            continue
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce")
        not_numeric = int((values.isna() & raw.notna()).sum())
        negative = int((values < 0).sum())
        fractional = int((values.notna() & (values % 1 != 0)).sum())
        if negative:
            negatives[column] = negative
            problems.append(f"column '{column}' has {negative} negative values")
        if not_numeric:
            problems.append(f"column '{column}' has {not_numeric} non-numeric values")
        if fractional:
            problems.append(f"column '{column}' has {fractional} non-integer values")
    if problems:
        return _outcome(False, ERROR, f"{where(table, week)}: {'; '.join(problems)}", negative_counts=negatives)
    return _outcome(True, ERROR, f"{where(table, week)}: every count is a whole number >= 0")


def check_binary(table: str, week: str, frame: pd.DataFrame, column: str) -> CheckOutcome:
    """`column` holds only 0 and 1 (nulls are check_no_nulls' business)."""
    if column not in frame.columns:
        return _outcome(False, ERROR, f"{where(table, week)}: column '{column}' is missing")
    values = frame[column].dropna()
    bad = values[~pd.to_numeric(values, errors="coerce").isin([0, 1])]
    if len(bad):
        return _outcome(
            False, ERROR,
            f"{where(table, week)}: column '{column}' has {len(bad)} values outside {{0, 1}}, e.g. "
            f"{_examples(bad.astype(str))}",
            bad_values=len(bad),
        )
    return _outcome(True, ERROR, f"{where(table, week)}: column '{column}' is 0 or 1")


# --------------------------------------------------------------------------------------------
# 4. one row per instance


def check_one_row_per_instance(table: str, week: str, frame: pd.DataFrame, column: str = "instance") -> CheckOutcome:
    if column not in frame.columns:
        return _outcome(False, ERROR, f"{where(table, week)}: column '{column}' is missing")
    ids = frame[column].dropna()
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        surplus = int(ids.duplicated().sum())
        return _outcome(
            False, ERROR,
            f"{where(table, week)}: column '{column}' has {surplus} duplicated rows "
            f"({duplicated.nunique()} instances), e.g. instances {_examples(duplicated)}",
            duplicate_rows=surplus, duplicate_instances=_examples(duplicated, 20),
        )
    return _outcome(True, ERROR, f"{where(table, week)}: one row per instance ({len(ids)} rows)", rows=len(ids))


# --------------------------------------------------------------------------------------------
# 5 and 9. the rows are exactly the cohort's instances


def check_rows_match(
    table: str, week: str, frame: pd.DataFrame, expected_instances: Iterable[Any], source: str, column: str = "instance"
) -> CheckOutcome:
    """The table has one row per distinct instance of `source` for the week, and no other."""
    if column not in frame.columns:
        return _outcome(False, ERROR, f"{where(table, week)}: column '{column}' is missing")
    expected = set(pd.Series(list(expected_instances), dtype="object").dropna().tolist())
    ids = frame[column].dropna()
    actual = set(ids.tolist())
    missing, unexpected = expected - actual, actual - expected
    metadata = {
        "rows": len(frame), "source": source, "expected_instances": len(expected),
        "missing": len(missing), "unexpected": len(unexpected),
    }
    if len(frame) == len(expected) and not missing and not unexpected:
        return _outcome(True, ERROR, f"{where(table, week)}: {len(frame)} rows, one per instance of {source}", **metadata)
    parts = [f"{len(frame)} rows for {len(expected)} distinct instances in {source} week={week}"]
    if missing:
        parts.append(f"{len(missing)} instances missing from the table, e.g. {_examples(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} instances not in {source}, e.g. {_examples(unexpected)}")
    return _outcome(False, ERROR, f"{where(table, week)}: column '{column}' has {'; '.join(parts)}", **metadata)


# --------------------------------------------------------------------------------------------
# 6. positive rate of the label


def check_positive_rate(
    table: str, week: str, frame: pd.DataFrame, low: float, high: float, column: str = "retained"
) -> CheckOutcome:
    if column not in frame.columns:
        return _outcome(False, WARN, f"{where(table, week)}: column '{column}' is missing")
    values = pd.to_numeric(frame[column], errors="coerce").dropna()
    if values.empty:
        return _outcome(True, WARN, f"{where(table, week)}: column '{column}' has no rows: no positive rate")
    rate = float(values.mean())
    metadata = {"positive_rate": round(rate, 4), "rows": len(values), "band": [low, high]}
    if not low <= rate <= high:
        return _outcome(
            False, WARN,
            f"{where(table, week)}: column '{column}' has positive rate {rate:.3f} "
            f"({int(values.sum())} of {len(values)}), outside the band {low:.2f}..{high:.2f}",
            **metadata,
        )
    return _outcome(True, WARN, f"{where(table, week)}: column '{column}' has positive rate {rate:.3f}", **metadata)


# --------------------------------------------------------------------------------------------
# 7. rows excluded by definition


def exclusions_path(table: str, week: str) -> str:
    """Where the feature asset writes the week's exclusion counts, relative to the storage root."""
    return f"{QUALITY_DIR}/{table}/{week}.json"


def exclusion_records(table: str, exclusions: pd.DataFrame, weeks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """week -> its exclusion counts as plain ints; a requested week the query did not return
    (no instance in the cohort) gets zeros."""
    by_week = {}
    if len(exclusions):
        by_week = {str(row["cohort_week"]): row for row in exclusions.to_dict("records")}
    records = {}
    for week in weeks:
        row = by_week.get(week, {})
        counts = {k: int(row[k]) if k in row and not pd.isna(row[k]) else 0 for k in EXCLUSION_COUNTS}
        records[week] = {"table": table, "cohort_week": week, **counts}
    return records


def check_exclusions(table: str, week: str, record: Mapping[str, Any], max_share: float) -> CheckOutcome:
    """Each exclusion kind's share of the week's rows (events up to day 6, or instance rows) is at
    most `max_share`; every count goes to the metadata."""
    counts = {k: int(record.get(k, 0) or 0) for k in EXCLUSION_COUNTS}
    shares, failing = {}, []
    for kind, denominator_name in EXCLUSION_DENOMINATORS.items():
        denominator = counts[denominator_name]
        share = counts[kind] / denominator if denominator else 0.0
        shares[kind] = round(share, 4)
        if share > max_share:
            failing.append(
                f"column '{kind}' excluded {counts[kind]} of {denominator} {denominator_name.replace('_', ' ')} "
                f"({share:.1%}), above {max_share:.1%}"
            )
    metadata = {"counts": counts, "shares": shares, "max_share": max_share}
    if failing:
        return _outcome(False, WARN, f"{where(table, week)}: {'; '.join(failing)}", **metadata)
    excluded = sum(counts[k] for k in EXCLUSION_DENOMINATORS)
    return _outcome(
        True, WARN, f"{where(table, week)}: {excluded} raw rows excluded by definition, each kind <= {max_share:.1%}",
        **metadata,
    )


# --------------------------------------------------------------------------------------------
# 8. feature drift


def _finite(values: Any) -> np.ndarray:
    array = pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").to_numpy(dtype=float)
    return array[np.isfinite(array)]


def psi_bin_edges(reference: Any, bins: int = 10) -> np.ndarray:
    """Cut points of the reference's quantile bins; ties collapse into one edge.

    Bins are right-closed: (-inf, c1], (c1, c2], ..., (ck, inf). With cut points at the interior
    quantiles a tie-heavy feature (mostly zeros) gets a bin of its own for the tied value, and a
    constant reference still separates `<= value` from `> value`.
    """
    ref = _finite(reference)
    if not len(ref):
        raise ValueError("population_stability_index: the reference has no finite values")
    return np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def bin_shares(values: Any, edges: np.ndarray) -> np.ndarray:
    data = _finite(values)
    if not len(data):
        raise ValueError("population_stability_index: no finite values to bin")
    # searchsorted(left): the number of cut points strictly below the value = its bin
    index = np.searchsorted(edges, data, side="left")
    return np.bincount(index, minlength=len(edges) + 1) / len(data)


def population_stability_index(reference: Any, current: Any, bins: int = 10, epsilon: float = 1e-4) -> float:
    """PSI = sum over bins of (cur - ref) * ln(cur / ref), bins from the reference's quantiles.

    An empty bin's share is taken as `epsilon` (no renormalization), so a bin empty on one side
    weighs (share - eps) * ln(share / eps) and one empty on both sides weighs nothing.
    """
    edges = psi_bin_edges(reference, bins)
    ref = np.maximum(bin_shares(reference, edges), epsilon)
    cur = np.maximum(bin_shares(current, edges), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def week1_complete(week: str, as_of: date) -> bool:
    """Whether every evaluator of the cohort week has finished week 1 and its last day has landed:
    the Sunday starter's week 1 ends on Monday + 6 + W1_DAYS - 1."""
    return as_of >= parse_week(week) + timedelta(days=6 + W1_DAYS)


def check_feature_drift(
    table: str,
    week: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    reference_name: str,
    features: Sequence[str] = FEATURE_COLUMNS,
    warn: float = 0.10,
    error: float = 0.25,
    bins: int = 10,
    min_rows: int = 0,
    complete: bool = True,
) -> CheckOutcome:
    """PSI of each feature of `current` against `reference`: failed WARN at `warn`, failed ERROR
    at `error`. A cohort whose week 1 is still in progress (`complete` False) or with fewer than
    `min_rows` rows is at most a warning: its features are partial or too few to judge."""
    head = where(table, week)
    features = [f for f in features if f in reference.columns and f in current.columns]
    if current.empty or reference.empty or not features:
        what = "no rows to score" if current.empty else "an empty reference" if reference.empty else "no common features"
        return _outcome(True, WARN, f"{head}: drift not computed ({what}) against {reference_name}",
                        rows=len(current), reference_rows=len(reference))
    psi = {f: population_stability_index(reference[f], current[f], bins=bins) for f in features}
    psi = {f: round(v, 4) for f, v in sorted(psi.items(), key=lambda item: -item[1])}
    worst, worst_psi = next(iter(psi.items()))
    metadata = {
        "psi": psi,
        "max_psi": worst_psi,
        "rows": len(current),
        "reference_rows": len(reference),
        "reference": reference_name,
        "warn_at": warn,
        "error_at": error,
        "week1_complete": complete,
    }
    if worst_psi < warn:
        return _outcome(True, WARN, f"{head}: no feature drifted (max PSI {worst_psi:.3f}, column '{worst}') "
                                    f"against {reference_name}", **metadata)
    severity: Severity = ERROR if worst_psi >= error else WARN
    notes = []
    if severity == ERROR and not complete:
        severity, notes = WARN, ["week 1 of this cohort is still in progress, its features are partial"]
    elif severity == ERROR and len(current) < min_rows:
        severity, notes = WARN, [f"only {len(current)} rows, fewer than {min_rows}"]
    drifted = [f for f, v in psi.items() if v >= warn]
    others = ", ".join(f"'{f}' {psi[f]:.3f}" for f in drifted[1:4])
    message = (
        f"{head}: column '{worst}' has PSI {worst_psi:.3f} (>= {error if worst_psi >= error else warn}) "
        f"against {reference_name}"
        + (f"; also {others}" if others else "")
        + (f" ({len(drifted)} features >= {warn})" if len(drifted) > 4 else "")
        + (f"; at most a warning: {notes[0]}" if notes else "")
    )
    return _outcome(False, severity, message, drifted=drifted, **metadata)


# --------------------------------------------------------------------------------------------
# 9. prediction values


def check_prediction_values(table: str, week: str, frame: pd.DataFrame) -> CheckOutcome:
    """retain_probability in [0, 1], prediction_retained in {0, 1}, model_version non-empty."""
    head = where(table, week)
    problems: list[str] = []
    counts: dict[str, int] = {}
    for column in ("retain_probability", "prediction_retained", "model_version"):
        if column not in frame.columns:
            problems.append(f"column '{column}' is missing")
    if "retain_probability" in frame.columns:
        p = pd.to_numeric(frame["retain_probability"], errors="coerce")
        bad = int((p.isna() | (p < 0) | (p > 1)).sum())
        if bad:
            counts["retain_probability"] = bad
            problems.append(f"column 'retain_probability' has {bad} values outside [0, 1] (or not numbers)")
    if "prediction_retained" in frame.columns:
        bad = int((~pd.to_numeric(frame["prediction_retained"], errors="coerce").isin([0, 1])).sum())
        if bad:
            counts["prediction_retained"] = bad
            problems.append(f"column 'prediction_retained' has {bad} values outside {{0, 1}}")
    if "model_version" in frame.columns:
        versions = frame["model_version"]
        bad = int((versions.isna() | (versions.astype(str).str.strip() == "")).sum())
        if bad:
            counts["model_version"] = bad
            problems.append(f"column 'model_version' has {bad} empty values")
    if problems:
        return _outcome(False, ERROR, f"{head}: {'; '.join(problems)}", bad_values=counts)
    versions = sorted(frame["model_version"].astype(str).unique().tolist())
    return _outcome(True, ERROR, f"{head}: probabilities in [0, 1], decisions 0/1, model_version set",
                    model_versions=versions, rows=len(frame))


# --------------------------------------------------------------------------------------------
# several partitions in one run (a single-run backfill)


def combine_outcomes(table: str, outcomes: Mapping[str, CheckOutcome]) -> CheckOutcome:
    """One outcome for a run that covered several weeks: failed when any week failed, with the
    worst severity among the failures and every failing week's message."""
    if len(outcomes) == 1:
        return next(iter(outcomes.values()))
    weeks = sorted(outcomes)
    failed = {w: o for w, o in sorted(outcomes.items()) if not o.passed}
    severities = {o.severity for o in (failed or outcomes).values()}
    severity: Severity = ERROR if ERROR in severities else WARN
    span = f"{table} weeks {weeks[0]}..{weeks[-1]}"
    metadata = {"weeks": weeks, "failed_weeks": list(failed), "messages": {w: o.message for w, o in outcomes.items()}}
    if failed:
        text = " | ".join(o.message for o in failed.values())
        return CheckOutcome(False, severity, f"{span}: {len(failed)} of {len(weeks)} weeks failed: {text}", metadata)
    return CheckOutcome(True, severity, f"{span}: all {len(weeks)} weeks passed", metadata)


def json_safe(value: Any) -> Any:
    """Metadata values as plain JSON: numpy scalars to Python, NaN to None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = [
    "CheckOutcome",
    "QualityThresholds",
    "THRESHOLD_ENV",
    "check_binary",
    "check_exclusions",
    "check_feature_drift",
    "check_no_nulls",
    "check_non_negative_counts",
    "check_one_row_per_instance",
    "check_positive_rate",
    "check_prediction_values",
    "check_rows_match",
    "check_schema",
    "combine_outcomes",
    "exclusion_records",
    "exclusions_path",
    "population_stability_index",
    "week1_complete",
]
