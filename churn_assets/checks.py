"""Data-quality asset checks, per cohort-week partition (the logic is in churn_assets.quality).

Each check reads the persisted CSV of its partition from the storage root (resource `storage`):
it takes no asset input, so no IO manager loads anything, and it carries the asset's own
partitions_def (without one, a check on a partitioned asset loads every partition).

| asset | check | blocking | failed severity |
|---|---|---|---|
| instances_modeling, instances_w1, predictions | contract_schema, no_nulls, one_row_per_instance | yes | ERROR |
| instances_modeling, instances_w1 | non_negative_counts, rows_match_raw_instances | yes | ERROR |
| instances_modeling | retained_is_binary | yes | ERROR |
| instances_modeling | retained_rate | no | WARN |
| instances_modeling, instances_w1 | exclusions | no | WARN |
| instances_w1 | feature_drift | no | WARN at PSI 0.1, ERROR at 0.25 |
| predictions | rows_match_instances_w1, prediction_values | yes | ERROR |

A failed blocking check (always ERROR) fails the run and stops the assets downstream of the bad
partition (the model, the predictions). The non-blocking ones are judgements about the data, not
about the table's correctness: they are reported and need their own alerting.

Thresholds: environment variables read when a check runs (see churn_assets.quality's docstring,
`QualityThresholds.from_env`); each result's metadata records the values used.

A single-run backfill over several weeks runs each check once with no partition key: the check
then evaluates every week of the run and reports one result that names the failing weeks.
"""
# No `from __future__ import annotations`: Dagster reads the context and resource annotations.

from collections.abc import Callable
from dataclasses import dataclass
import json
from datetime import datetime, timezone

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from churn_assets.assets.ml import predictions, scoring_model_week
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import (
    CHURN_MODEL_DIR,
    FEATURE_COLUMNS,
    INSTANCES_MODELING_COLUMNS,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_COLUMNS,
    INSTANCES_W1_DIR,
    PREDICTION_COLUMNS,
    PREDICTIONS_DIR,
    RAW_INSTANCES,
)
from churn_assets.ml.model import ModelCard
from churn_assets.quality import (
    ERROR,
    WARN,
    CheckOutcome,
    QualityThresholds,
    Severity,
    check_binary,
    check_exclusions,
    check_feature_drift,
    check_no_nulls,
    check_non_negative_counts,
    check_one_row_per_instance,
    check_positive_rate,
    check_prediction_values,
    check_rows_match,
    check_schema,
    combine_outcomes,
    exclusions_path,
    json_safe,
    week1_complete,
    where,
)
from churn_assets.raw_tables import parquet_files, week_folder
from churn_assets.registry import MissingArtefact, read_training_rows
from churn_assets.weeks import parse_week
from resources.storage import StorageRoot

FOLDERS = {
    "instances_modeling": INSTANCES_MODELING_DIR,
    "instances_w1": INSTANCES_W1_DIR,
    "predictions": PREDICTIONS_DIR,
}
COLUMNS = {
    "instances_modeling": INSTANCES_MODELING_COLUMNS,
    "instances_w1": INSTANCES_W1_COLUMNS,
    "predictions": PREDICTION_COLUMNS,
}


class Unreadable(Exception):
    """An input of the check is missing or cannot be read; the message names table and week."""


@dataclass(frozen=True)
class Week:
    """What one check evaluates: a table's partition, with the storage root and thresholds."""

    storage: StorageRoot
    table: str
    week: str
    thresholds: QualityThresholds

    def rows(self, table: str | None = None) -> pd.DataFrame:
        return read_week_csv(self.storage, table or self.table, self.week)


Evaluate = Callable[[Week], CheckOutcome]


# --------------------------------------------------------------------------------------------
# reading


def read_week_csv(storage: StorageRoot, table: str, week: str) -> pd.DataFrame:
    relative = f"{FOLDERS[table]}/{week}.csv"
    if not storage.exists(relative):
        raise Unreadable(f"{where(table, week)}: {storage.uri(relative)} does not exist: materialize the partition first")
    try:
        return storage.read_csv(relative, dtype={"eval_start_date": str, "model_version": str})
    except Exception as exc:  # a truncated or ragged file
        raise Unreadable(f"{where(table, week)}: {storage.uri(relative)} is not a readable CSV ({exc})") from exc


def raw_cohort_instances(storage: StorageRoot, week: str) -> set:
    """Distinct instances of raw_instances' partition `week` whose eval_start_date falls in it
    (the cohort as the feature SQL defines it; rows with a null id or date are excluded there too).
    Read with pyarrow, file by file (a partition may hold files of different integer widths)."""
    folder = week_folder(RAW_INSTANCES, week)
    frames = []
    for relative in parquet_files(storage, folder):
        try:
            table = pq.read_table(storage.local_path(relative), columns=["instance", "eval_start_date"])
        except Exception as exc:
            raise Unreadable(f"{RAW_INSTANCES} partition week={week} file {relative.rsplit('/', 1)[-1]}: {exc}") from exc
        frames.append(table.to_pandas())
    if not frames:
        return set()
    raw = pd.concat(frames, ignore_index=True).dropna()
    start = pd.Timestamp(parse_week(week))
    day = pd.to_datetime(raw["eval_start_date"])
    in_week = raw[(day >= start) & (day < start + pd.Timedelta(days=7))]
    return set(in_week["instance"].astype("int64").tolist())


# --------------------------------------------------------------------------------------------
# what each check evaluates


def contract_schema(w: Week) -> CheckOutcome:
    return check_schema(w.table, w.week, w.rows(), COLUMNS[w.table], prefix=w.table == "predictions")


def no_nulls(w: Week) -> CheckOutcome:
    return check_no_nulls(w.table, w.week, w.rows(), COLUMNS[w.table])


def non_negative_counts(w: Week) -> CheckOutcome:
    return check_non_negative_counts(w.table, w.week, w.rows(), FEATURE_COLUMNS)


def one_row_per_instance(w: Week) -> CheckOutcome:
    return check_one_row_per_instance(w.table, w.week, w.rows())


def rows_match_raw_instances(w: Week) -> CheckOutcome:
    return check_rows_match(w.table, w.week, w.rows(), raw_cohort_instances(w.storage, w.week), "raw_instances")


def rows_match_instances_w1(w: Week) -> CheckOutcome:
    scored = w.rows("instances_w1")
    return check_rows_match(w.table, w.week, w.rows(), scored["instance"] if "instance" in scored else [], "instances_w1")


def retained_is_binary(w: Week) -> CheckOutcome:
    return check_binary(w.table, w.week, w.rows(), "retained")


def retained_rate(w: Week) -> CheckOutcome:
    t = w.thresholds
    return check_positive_rate(w.table, w.week, w.rows(), t.retained_rate_min, t.retained_rate_max)


def exclusions(w: Week) -> CheckOutcome:
    relative = exclusions_path(w.table, w.week)
    if not w.storage.exists(relative):
        raise Unreadable(
            f"{where(w.table, w.week)}: no exclusion counts at {w.storage.uri(relative)}: re-materialize the partition"
        )
    return check_exclusions(w.table, w.week, json.loads(w.storage.read_text(relative)), w.thresholds.max_excluded_share)


def feature_drift(w: Week) -> CheckOutcome:
    """PSI of every feature against the training rows of the model that scores this week
    (the preprocessor-independent feature values stored in instances_modeling)."""
    rows = w.rows()
    try:  # the same rule as the predictions asset: the newest promoted model older than the week
        model_week = scoring_model_week(w.storage, w.week)
    except dg.Failure:
        return CheckOutcome(True, WARN, f"{where(w.table, w.week)}: no promoted churn_model trained before this "
                                        "week: drift not computed", {"rows": len(rows)})
    card = ModelCard.from_json(w.storage.read_text(f"{CHURN_MODEL_DIR}/{model_week}/card.json"))
    try:
        reference, missing = read_training_rows(w.storage, list(card.training_weeks))
    except MissingArtefact as exc:
        raise Unreadable(f"{where(w.table, w.week)}: reference rows of model {card.model_version}: {exc}") from exc
    t = w.thresholds
    weeks = card.training_weeks
    outcome = check_feature_drift(
        w.table, w.week, reference, rows,
        reference_name=f"model {card.model_version} training weeks {weeks[0]}..{weeks[-1]}",
        warn=t.psi_warn, error=t.psi_error, bins=t.psi_bins, min_rows=t.drift_min_rows,
        complete=week1_complete(w.week, datetime.now(timezone.utc).date()),
    )
    if missing:
        outcome.metadata["missing_reference_weeks"] = missing
    return outcome


def prediction_values(w: Week) -> CheckOutcome:
    return check_prediction_values(w.table, w.week, w.rows())


# --------------------------------------------------------------------------------------------
# wiring


def _evaluate(evaluate: Evaluate, w: Week, severity: Severity) -> CheckOutcome:
    try:
        return evaluate(w)
    except Unreadable as exc:
        return CheckOutcome(False, severity, str(exc), {})


def partition_check(
    asset: dg.AssetsDefinition, evaluate: Evaluate, *, blocking: bool, description: str
) -> dg.AssetChecksDefinition:
    """An asset check named after `evaluate`, on `asset`'s partitions. Blocking checks fail with
    ERROR severity (that is what stops the assets downstream); the others carry their outcome's."""
    table = asset.key.to_user_string()
    severity: Severity = ERROR if blocking else WARN

    @dg.asset_check(
        asset=asset,
        name=evaluate.__name__,
        description=description,
        blocking=blocking,
        partitions_def=asset.partitions_def,
    )
    def _check(context: dg.AssetCheckExecutionContext, storage: StorageRoot) -> dg.AssetCheckResult:
        thresholds = QualityThresholds.from_env()
        weeks = [context.partition_key] if context.has_partition_key else list(context.partition_keys)
        outcomes = {week: _evaluate(evaluate, Week(storage, table, week, thresholds), severity) for week in weeks}
        outcome = combine_outcomes(table, outcomes)
        metadata = json_safe(outcome.metadata)
        if not blocking:  # the judgement checks: record the thresholds they used
            metadata["thresholds"] = thresholds.as_metadata()
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR if blocking or outcome.severity == ERROR else dg.AssetCheckSeverity.WARN,
            description=outcome.message,
            metadata=metadata,
        )

    return _check


def feature_table_checks(asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks instances_modeling and instances_w1 share."""
    return [
        partition_check(asset, contract_schema, blocking=True,
                        description="The CSV's columns are exactly the contract's, in its order."),
        partition_check(asset, no_nulls, blocking=True, description="No null value in any contract column."),
        partition_check(asset, non_negative_counts, blocking=True,
                        description="Every feature is a whole number >= 0."),
        partition_check(asset, one_row_per_instance, blocking=True,
                        description="No instance appears twice; failures name example instances."),
        partition_check(asset, rows_match_raw_instances, blocking=True,
                        description="One row per distinct instance of raw_instances' partition of the cohort week."),
        partition_check(asset, exclusions, blocking=False,
                        description="Raw rows excluded by definition (orphan, invalid, early, unknown type, "
                                    "duplicate events; duplicate instance rows) are counted; each kind stays "
                                    "under CHURN_DQ_MAX_EXCLUDED_SHARE of the week's rows."),
    ]


INSTANCES_MODELING_CHECKS = [
    *feature_table_checks(instances_modeling),
    partition_check(instances_modeling, retained_is_binary, blocking=True, description="The label is 0 or 1."),
    partition_check(instances_modeling, retained_rate, blocking=False,
                    description="The cohort's positive rate lies in CHURN_DQ_RETAINED_RATE_MIN..MAX."),
]
INSTANCES_W1_CHECKS = [
    *feature_table_checks(instances_w1),
    partition_check(instances_w1, feature_drift, blocking=False,
                    description="Population stability index of each feature against the training rows of the "
                                "model that scores the week: WARN at CHURN_DQ_PSI_WARN, ERROR at "
                                "CHURN_DQ_PSI_ERROR (non-blocking)."),
]
PREDICTIONS_CHECKS = [
    partition_check(predictions, contract_schema, blocking=True,
                    description="The CSV starts with the contract's prediction columns, in order."),
    partition_check(predictions, no_nulls, blocking=True, description="No null value in any contract column."),
    partition_check(predictions, one_row_per_instance, blocking=True, description="No instance scored twice."),
    partition_check(predictions, rows_match_instances_w1, blocking=True,
                    description="Exactly the instances of instances_w1's partition of the same week."),
    partition_check(predictions, prediction_values, blocking=True,
                    description="retain_probability in [0, 1], prediction_retained 0/1, model_version non-empty."),
]

ASSET_CHECKS: list[dg.AssetChecksDefinition] = [*INSTANCES_MODELING_CHECKS, *INSTANCES_W1_CHECKS, *PREDICTIONS_CHECKS]
