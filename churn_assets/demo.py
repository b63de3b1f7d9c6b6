"""`make demo`: the main job on the embedded default, end to end, with a printed summary.

Simulates the default data set when the storage root has no raw data, then materializes the graph
in one process (one Spark session): both tables over every cohort week with data (single-run
backfills), the preprocessor, model, evaluation and behaviour report of the newest labelled
week, and the predictions (with reasons, segments and the save list) of every cohort week whose
labels are not in yet. Runs are recorded in the Dagster
instance of DAGSTER_HOME when set, so `make dev` shows them afterwards.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone

import dagster as dg

from churn_assets.assets.ml import churn_model, model_evaluation, predictions, preprocessor
from churn_assets.assets.report import REPORTS_DIR, behavior_report
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import (
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_DIR,
    PREDICTIONS_DIR,
    RAW_INSTANCES,
)
from churn_assets.ml.metrics import TALK_REPORTED_RESULTS, markdown_talk_table
from churn_assets.ml.segments import SAVE_LIST_DIR
from churn_assets.partitions import cohort_weeks, labelled_weeks
from churn_assets.raw_tables import available_weeks
from churn_assets.registry import read_evaluation, read_model
from churn_assets.settings import SETTINGS
from churn_assets.weeks import latest_labelled_week, week_key, week_of
from resources import resources_for_environment


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run (and one Spark job) of the partitions first..last."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def demo_weeks(storage, as_of: date) -> dict[str, list[str]]:
    """The cohort weeks the demo materializes as of `as_of`, from the raw data present:
    `modeling` (labelled weeks with data), `w1` (weeks with data up to the week in progress) and
    `unlabelled` (the w1 weeks after the newest labelled one: those the demo scores)."""
    data_weeks = available_weeks(storage, RAW_INSTANCES)
    labelled = set(labelled_weeks.get_partition_keys())
    scorable = set(cohort_weeks.get_partition_keys())
    newest_labelled = week_key(latest_labelled_week(as_of, SETTINGS.label_window_days))
    modeling = [w for w in data_weeks if w in labelled and w <= newest_labelled]
    w1 = [w for w in data_weeks if w in scorable and w <= week_key(week_of(as_of))]
    unlabelled = [w for w in w1 if modeling and w > modeling[-1]]
    return {"modeling": modeling, "w1": w1, "unlabelled": unlabelled}


def _instance() -> dg.DagsterInstance:
    import os

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run_demo(root: str, as_of: date | None = None, instances: int = 57_700, fresh: bool = False) -> int:
    as_of = as_of or datetime.now(timezone.utc).date()
    resources = resources_for_environment()
    storage = resources["storage"]
    started = time.perf_counter()
    if fresh or not available_weeks(storage, RAW_INSTANCES):
        from churn_assets.simulator import simulate

        print(f"Simulating {instances:,} labelled evaluators as of {as_of} into {storage.uri('raw')} ...")
        summary = simulate(root, instances=instances, as_of=as_of)
        print(f"  {summary.instances:,} instances, {summary.event_rows:,} usage rows in {summary.seconds:.1f}s")

    weeks = demo_weeks(storage, as_of)
    modeling_weeks, w1_weeks, unlabelled = weeks["modeling"], weeks["w1"], weeks["unlabelled"]
    if not modeling_weeks:
        print(f"No labelled cohort week with data under {storage.uri(RAW_INSTANCES)}: nothing to train on.")
        return 1
    model_week = modeling_weeks[-1]

    instance = _instance()
    runs = [
        ("instances_modeling", [instances_modeling], {"tags": range_tags(modeling_weeks[0], model_week)}),
        ("instances_w1", [instances_w1], {"tags": range_tags(w1_weeks[0], w1_weeks[-1])}),
        ("preprocessor -> churn_model -> model_evaluation", [preprocessor, churn_model, model_evaluation],
         {"partition_key": model_week}),
        ("behavior_report", [behavior_report], {"partition_key": model_week}),
        ("predictions", [predictions], {"tags": range_tags(unlabelled[0], unlabelled[-1])} if unlabelled else None),
    ]
    for label, assets, partition in runs:
        if partition is None:
            continue
        step_started = time.perf_counter()
        result = dg.materialize(assets, resources=resources, instance=instance, **partition)
        print(f"materialized {label} in {time.perf_counter() - step_started:.1f}s")
        if not result.success:
            return 1

    evaluation = read_evaluation(storage, model_week)
    model = read_model(storage, model_week)
    print_summary(storage, modeling_weeks, w1_weeks, unlabelled, evaluation, model)
    print(f"\nDemo finished in {time.perf_counter() - started:.0f}s.")
    return 0


def _rows(storage, folder: str, weeks: list[str]) -> int:
    return sum(storage.read_bytes(f"{folder}/{w}.csv").count(b"\n") - 1 for w in weeks)


def print_summary(storage, modeling_weeks, w1_weeks, scored_weeks, evaluation, model) -> None:
    print("\n== Tables ==")
    for name, folder, weeks in (
        ("instances_modeling", INSTANCES_MODELING_DIR, modeling_weeks),
        ("instances_w1", INSTANCES_W1_DIR, w1_weeks),
        ("predictions", PREDICTIONS_DIR, scored_weeks),
    ):
        span = f"{weeks[0]}..{weeks[-1]}" if weeks else "none"
        print(f"{name:20s} {_rows(storage, folder, weeks):>8,} rows  {len(weeks):>2} weeks ({span})  {storage.uri(folder)}/")
    print(f"\n== Model {model.version} ==  threshold {model.threshold:.3f}, trained on {model.card.rows:,} rows")
    print("\n== The talk's protocol (random 0.33 split, threshold 0.5) ==")
    print(markdown_talk_table(evaluation["talk_protocol"]))
    print("\n(the talk reported)")
    print(markdown_talk_table(TALK_REPORTED_RESULTS))
    oot, oracle = evaluation["out_of_time"], evaluation.get("oracle")
    print(
        f"\n== Out of time: trained on {oot['train']['weeks']['first']}..{oot['train']['weeks']['last']}, "
        f"tested on {oot['test']['weeks']['first']}..{oot['test']['weeks']['last']} ({oot['test']['rows']:,} rows) =="
    )
    print(f"{'metric':12s} {'model':>8s} {'oracle':>8s} {'baseline':>9s}")
    for metric in ("roc_auc", "pr_auc", "brier", "log_loss", "precision", "recall", "f1"):
        base = oot["baseline"].get(metric)
        print(
            f"{metric:12s} {oot[metric]:8.4f} "
            f"{(oracle[metric] if oracle else float('nan')):8.4f} "
            f"{(base if base is not None else float('nan')):9.4f}"
        )
    if oracle:
        print(f"ROC-AUC ratio to the oracle: {evaluation['auc_ratio_to_oracle']:.3f}")
    print(f"\nPredictions: {storage.uri(PREDICTIONS_DIR)}/WEEK.csv for {', '.join(scored_weeks) or 'no week'}")
    if scored_weeks:
        week = scored_weeks[-1]
        saves = storage.read_csv(f"{SAVE_LIST_DIR}/{week}.csv", dtype={"eval_start_date": str})
        print(f"Save list of {week}: {len(saves):,} evaluators, {storage.uri(SAVE_LIST_DIR)}/{week}.csv; the first three:")
        for row in saves.head(3).itertuples():
            print(f"  #{row.rank} instance {row.instance} ({row.segment}, p={row.retain_probability:.2f}): {row.top_reasons}")
    print(f"Behaviour report: {storage.uri(REPORTS_DIR)}/{evaluation['week']}/summary.md")
