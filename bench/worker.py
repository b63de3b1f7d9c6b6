"""Measured workloads, each run by bench/run.py in a fresh process.

    worker.py setup-incremental --root R --as-of T --instances N   (untimed) simulate as of T, run the graph as of T - 7 days
    worker.py refresh --root R --as-of T --out F.json              the incremental weekly refresh as of T
    worker.py stages --root R --as-of T --instances N --repeats K --out F.json

The whole demo is measured through the real command (`python -m churn_assets.cli demo`), not here.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for churn_assets

_T0 = time.perf_counter()


def _args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["setup-incremental", "refresh", "stages"])
    parser.add_argument("--root", required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, required=True)
    parser.add_argument("--instances", type=int, default=57_700)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    return parser.parse_args(argv)


def plan(storage, as_of: date) -> dict:
    """The weeks the demo materializes as of `as_of` (churn_assets.demo.demo_weeks)."""
    from churn_assets.demo import demo_weeks

    weeks = demo_weeks(storage, as_of)
    return {"modeling_weeks": weeks["modeling"], "w1_weeks": weeks["w1"], "model_week": weeks["modeling"][-1],
            "unlabelled_weeks": weeks["unlabelled"]}


# ---------------------------------------------------------------------------------------------
# Incremental weekly refresh
# ---------------------------------------------------------------------------------------------


def setup_incremental(args) -> int:
    """Untimed: the raw data as of T, and every asset materialized as it was a week earlier."""
    from churn_assets.demo import run_demo
    from churn_assets.simulator import simulate

    simulate(args.root, instances=args.instances, as_of=args.as_of)
    return run_demo(root=args.root, as_of=args.as_of - timedelta(days=7))


def refresh(args) -> int:
    """One new cohort week through the whole graph, as the platform's own cadence runs it
    (churn_assets/automation.py): the weekly retrain (instances_modeling of the newly labelled
    week, then preprocessor, churn_model, model_evaluation), the behaviour report of that week,
    and the daily scoring (instances_w1 and predictions of the week in progress and the week
    before, SCORING_WEEKS)."""
    import dagster as dg

    from churn_assets.assets.ml import churn_model, model_evaluation, predictions, preprocessor
    from churn_assets.assets.report import behavior_report
    from churn_assets.assets.tables import instances_modeling, instances_w1
    from churn_assets.automation import SCORING_WEEKS
    from churn_assets.demo import range_tags
    from churn_assets.weeks import week_key, week_of
    from resources import resources_for_environment

    imported = time.perf_counter() - _T0
    resources = resources_for_environment()
    p = plan(resources["storage"], args.as_of)
    current = week_of(args.as_of)
    scoring = [week_key(current - timedelta(weeks=i)) for i in reversed(range(SCORING_WEEKS))]
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    runs = [
        ("instances_modeling", [instances_modeling], {"partition_key": p["model_week"]}),
        ("preprocessor+churn_model+model_evaluation", [preprocessor, churn_model, model_evaluation],
         {"partition_key": p["model_week"]}),
        ("behavior_report", [behavior_report], {"partition_key": p["model_week"]}),
        ("instances_w1", [instances_w1], {"tags": range_tags(scoring[0], scoring[-1])}),
        ("predictions", [predictions], {"tags": range_tags(scoring[0], scoring[-1])}),
    ]
    steps = {"python_start_and_imports": round(imported, 3)}
    for label, assets, partition in runs:
        started = time.perf_counter()
        result = dg.materialize(assets, resources=resources, instance=instance, **partition)
        steps[label] = round(time.perf_counter() - started, 3)
        print(f"materialized {label} in {steps[label]:.1f}s", flush=True)
        if not result.success:
            return 1
    Path(args.out).write_text(json.dumps({
        "new_labelled_week": p["model_week"], "scored_weeks": scoring, "steps": steps,
        "in_process_seconds": round(time.perf_counter() - _T0, 3),
    }, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------
# Stage timings: one process, one Spark session
# ---------------------------------------------------------------------------------------------


class Samples(dict):
    def add(self, name: str, **values) -> None:
        self.setdefault(name, []).append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items()})


def _clock():
    started = time.perf_counter()
    return lambda: time.perf_counter() - started


def stages(args) -> int:
    import dagster  # noqa: F401 - the import cost of the platform, as every run pays it
    import pandas as pd

    from churn_assets.assets.ml import window_week_keys
    from churn_assets.contract import INSTANCES_MODELING_DIR, INSTANCES_W1_DIR
    from churn_assets.features import compute_feature_table, read_sql, register_raw_views, write_weekly_csv
    from churn_assets.ml.evaluation import model_gate, out_of_time, talk_protocol
    from churn_assets.ml.explain import converter_reference
    from churn_assets.ml.model import TALK_XGB_PARAMS, fit_pipeline, train_churn_model
    from churn_assets.ml.preprocessing import Preprocessor
    from churn_assets.ml.scoring import score, score_with_reasons
    from churn_assets.ml.segments import SAVE_LIST_DIR, SegmentConfig, save_list
    from churn_assets.partitions import labelled_weeks
    from churn_assets.registry import (
        read_model, read_scoring_rows, read_training_rows, read_truth, write_evaluation, write_model,
        write_predictions, write_preprocessor, write_promotion,
    )
    from churn_assets.settings import SETTINGS
    from churn_assets.simulator import simulate
    from churn_assets.weeks import parse_week
    from resources.spark import spark_config
    from resources.storage import StorageRoot

    import duckdb_features as ddb

    out: dict = {"imports_seconds": round(time.perf_counter() - _T0, 3), "instances": args.instances}
    samples = Samples()
    work = Path(args.root)
    repeats = args.repeats
    lw = SETTINGS.label_window_days

    def progress(message: str) -> None:
        print(f"[stages {time.perf_counter() - _T0:7.1f}s] {message}", flush=True)

    # -- simulate --------------------------------------------------------------------------
    roots = []
    for i in range(repeats):
        root = work / f"sim{i}"
        shutil.rmtree(root, ignore_errors=True)
        clock = _clock()
        summary = simulate(root, instances=args.instances, as_of=args.as_of)
        samples.add("simulate", seconds=clock(), instances=summary.instances, event_rows=summary.event_rows)
        roots.append(root)
        progress(f"simulate {i + 1}/{repeats}: {samples['simulate'][-1]['seconds']:.1f}s")
    for root in roots[1:]:
        shutil.rmtree(root, ignore_errors=True)
    storage = StorageRoot(root=str(roots[0]))
    out["raw_bytes"] = sum(f.stat().st_size for f in (roots[0] / "raw").rglob("*") if f.is_file())
    out["event_rows"] = samples["simulate"][0]["event_rows"]
    p = plan(storage, args.as_of)
    out["plan"] = {k: (v if isinstance(v, str) else f"{v[0]}..{v[-1]} ({len(v)})") for k, v in p.items()}

    # -- JVM start -------------------------------------------------------------------------
    from pyspark.sql import SparkSession

    clock = _clock()
    builder = SparkSession.builder
    for key, value in spark_config().items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    out["jvm_start_seconds"] = round(clock(), 3)
    clock = _clock()
    spark.range(1000).selectExpr("sum(id)").collect()
    out["first_spark_job_seconds"] = round(clock(), 3)
    progress(f"JVM start {out['jvm_start_seconds']:.1f}s")

    # -- feature SQL for all weeks (as the demo: one job per table over the whole range) ----------
    mod_first, mod_last = parse_week(p["modeling_weeks"][0]), parse_week(p["modeling_weeks"][-1])
    w1_first, w1_last = parse_week(p["w1_weeks"][0]), parse_week(p["w1_weeks"][-1])
    for i in range(repeats):
        clock = _clock()
        modeling = compute_feature_table(spark, storage, "instances_modeling", mod_first, mod_last, lw)
        t_mod = clock()
        scoring = compute_feature_table(spark, storage, "instances_w1", w1_first, w1_last, lw)
        t_sql = clock()
        write_weekly_csv(storage, modeling)
        write_weekly_csv(storage, scoring)
        total = clock()
        samples.add("features", seconds=total, instances_modeling_seconds=t_mod, instances_w1_seconds=t_sql - t_mod,
                    csv_write_seconds=total - t_sql, modeling_rows=len(modeling.rows), w1_rows=len(scoring.rows))
        progress(f"features {i + 1}/{repeats}: {total:.1f}s")

    # Where the feature stage's time goes (once, warm): footer validation + view registration,
    # the feature query to pandas, and the exclusion counts (sql/usage_exclusions.sql).
    breakdown = {}
    for table, first, last in (("instances_modeling", mod_first, mod_last), ("instances_w1", w1_first, w1_last)):
        bounds = {"first_day": first.isoformat(), "end_day": (last + timedelta(days=7)).isoformat()}
        clock = _clock()
        register_raw_views(spark, storage, first, last, lw if table == "instances_modeling" else None)
        t_views = clock()
        ddb.register_w1(spark, first, last)
        spark.sql(read_sql(f"{table}.sql", label_window_days=lw)).toPandas()
        t_query = clock()
        spark.sql(read_sql("usage_exclusions.sql", **bounds)).toPandas()
        t_excl = clock()
        breakdown[table] = {"validate_and_register_views_seconds": round(t_views, 3),
                            "feature_query_to_pandas_seconds": round(t_query - t_views, 3),
                            "exclusions_query_seconds": round(t_excl - t_query, 3)}
    out["features_breakdown"] = breakdown
    progress(f"features breakdown {breakdown}")

    # -- Spark vs DuckDB on the same files (Spark warm: the session ran the stage above) -------
    queries = [ddb.record_partitions(spark, storage, "instances_modeling", mod_first, mod_last, lw),
               ddb.record_partitions(spark, storage, "instances_w1", w1_first, w1_last, lw)]
    connection = ddb.duckdb_connection()
    checks = {}
    for i in range(repeats + 1):  # the first of each is a warm-up, not counted
        spark_total, duck_total = 0.0, 0.0
        for query in queries:
            seconds, spark_rows = ddb.timed(ddb.run_spark, spark, storage, query)
            spark_total += seconds
            seconds, duck_rows = ddb.timed(ddb.run_duckdb, connection, query)
            duck_total += seconds
            if i == 0:
                checks[query.table] = ddb.compare(spark_rows, duck_rows)
        if i:
            samples.add("feature_query_spark", seconds=spark_total)
            samples.add("feature_query_duckdb", seconds=duck_total)
        progress(f"spark vs duckdb {i}/{repeats}: {spark_total:.2f}s vs {duck_total:.2f}s")
    out["duckdb_check"] = checks
    connection.close()

    # -- preprocessing and training (the preprocessor and churn_model assets) ------------------
    model_week = p["model_week"]
    first_known = labelled_weeks.get_first_partition_key()
    window = [w for w in window_week_keys(model_week) if w >= first_known]
    for i in range(repeats):
        clock = _clock()
        frame, _ = read_training_rows(storage, window)
        t_read = clock()
        fitted = Preprocessor.fit(frame)
        write_preprocessor(storage, model_week, fitted)
        t_pre = clock()
        trained = train_churn_model(frame, model_version=model_week, params=dict(TALK_XGB_PARAMS),
                                    threshold_folds=5, preprocessor=fitted)
        t_train = clock()
        write_model(storage, model_week, trained, converter_reference(frame))
        total = clock()
        samples.add("train", seconds=total, read_csv_seconds=t_read, preprocess_seconds=t_pre - t_read,
                    train_seconds=t_train - t_pre, write_seconds=total - t_train, rows=len(frame))
        progress(f"train {i + 1}/{repeats}: {total:.1f}s")
    clock = _clock()
    fit_pipeline(frame, dict(TALK_XGB_PARAMS), fitted.drop, fitted)
    out["train_breakdown"] = {"final_fit_seconds": round(clock(), 3),
                              "note": "train_seconds - final_fit_seconds ~ the 5 out-of-fold fits for the threshold"}

    # -- evaluation (the model_evaluation asset) -----------------------------------------------
    model = read_model(storage, model_week)
    for i in range(repeats):
        clock = _clock()
        talk = talk_protocol(frame, drop=model.preprocessor.drop, seed=27, test_size=0.33)
        t_talk = clock()
        truth = read_truth(storage)
        if truth is not None:
            truth = truth[truth["instance"].isin(frame["instance"])]
            truth = truth if len(truth) >= len(frame) else None
        oot = out_of_time(frame, test_weeks=3, params=model.card.params, truth=truth,
                          drop=model.preprocessor.drop, threshold_folds=5)
        t_oot = clock()
        gate = model_gate(oot["model"]["roc_auc"], None, 0.75, 0.02)
        write_evaluation(storage, model_week, {"model_version": model.version, "week": model_week,
                                               "out_of_time": {**oot["model"]}, "gate": gate})
        if gate["passed"]:
            write_promotion(storage, model_week, {"model_version": model.version, **gate})
        total = clock()
        samples.add("evaluation", seconds=total, talk_protocol_seconds=t_talk, out_of_time_seconds=t_oot - t_talk,
                    **{f"talk_fit_{k}_seconds": v["fit_seconds"] for k, v in talk["models"].items()},
                    out_of_time_roc_auc=oot["model"]["roc_auc"])
        progress(f"evaluation {i + 1}/{repeats}: {total:.1f}s")

    # -- behaviour report (the behavior_report asset) ------------------------------------------
    from churn_assets.assets.report import REPORTS_DIR, daily_usage
    from churn_assets.report import SUMMARY_FILE, TABLES_FILE, ActivationRule, build_behavior_report

    for i in range(repeats):
        clock = _clock()
        daily = daily_usage(storage, frame)  # the day-by-day files instances_modeling wrote
        t_daily = clock()
        report = build_behavior_report(frame, daily, model.preprocessor, model.booster,
                                       rule=ActivationRule(2, {"number_of_issues": 1}), top_n=4, bins=10,
                                       label_window_days=lw)
        t_build = clock()
        folder = f"{REPORTS_DIR}/{model_week}"
        for name, png in report.charts.items():
            storage.write_bytes(f"{folder}/{name}", png)
        storage.write_text(f"{folder}/{TABLES_FILE}", report.to_json())
        storage.write_text(f"{folder}/{SUMMARY_FILE}", report.markdown())
        total = clock()
        samples.add("behavior_report", seconds=total, daily_read_seconds=t_daily, build_seconds=t_build - t_daily,
                    write_seconds=total - t_build)
        progress(f"behavior_report {i + 1}/{repeats}: {total:.1f}s")

    # -- scoring (the predictions asset over the weeks whose labels are not in yet) ------------
    segments = SegmentConfig()
    for i in range(repeats):
        clock = _clock()
        rows_scored = 0
        for week in p["unlabelled_weeks"]:
            rows = read_scoring_rows(storage, week)
            stored = read_model(storage, model_week)
            scored = score_with_reasons(rows, stored.preprocessor, stored.booster, stored.threshold, stored.version,
                                        stored.converter_reference, segments)
            write_predictions(storage, week, scored)
            storage.write_csv(f"{SAVE_LIST_DIR}/{week}.csv", save_list(scored, segments))
            rows_scored += len(scored)
        samples.add("scoring", seconds=clock(), rows=rows_scored, weeks=len(p["unlabelled_weeks"]))
        progress(f"scoring {i + 1}/{repeats}: {samples['scoring'][-1]['seconds']:.1f}s")

    # -- scoring throughput: every instances_w1 row, model already loaded ------------------------
    clock = _clock()
    stored = read_model(storage, model_week)
    out["model_load_seconds"] = round(clock(), 4)
    everyone = pd.concat([read_scoring_rows(storage, w) for w in p["w1_weeks"]], ignore_index=True)
    for i in range(repeats):
        gc.collect()
        clock = _clock()
        score(everyone, stored.preprocessor, stored.booster, stored.threshold, stored.version)
        t_plain = clock()
        clock = _clock()
        score_with_reasons(everyone, stored.preprocessor, stored.booster, stored.threshold, stored.version,
                           stored.converter_reference, segments)
        t_full = clock()
        samples.add("scoring_throughput", rows=len(everyone), score_seconds=t_plain, with_reasons_seconds=t_full,
                    evaluators_per_second=len(everyone) / t_full,
                    evaluators_per_second_without_reasons=len(everyone) / t_plain)
        progress(f"throughput {i + 1}/{repeats}: {len(everyone) / t_full:,.0f}/s with reasons, "
                 f"{len(everyone) / t_plain:,.0f}/s without")

    spark.stop()
    out["samples"] = samples
    out["python_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["in_process_seconds"] = round(time.perf_counter() - _T0, 3)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    return 0


def main(argv=None) -> int:
    args = _args(argv)
    return {"setup-incremental": setup_incremental, "refresh": refresh, "stages": stages}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
