"""The ML assets: preprocessor, churn_model, model_evaluation, predictions.

Thin wiring: the logic lives in churn_assets.ml (pure, tested alone) and churn_assets.registry
(where artefacts live). Every asset persists its output under the storage root itself.
"""
# No `from __future__ import annotations` in asset modules: Dagster reads the context annotation.

import time
from datetime import timedelta

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from churn_assets.assets.raw import OWNER
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.contract import DEFAULT_DROP_COLUMNS, PREDICTIONS_DIR
from churn_assets.ml.evaluation import model_gate, out_of_time, talk_protocol
from churn_assets.ml.metrics import markdown_talk_table
from churn_assets.ml.model import TALK_XGB_PARAMS, train_churn_model
from churn_assets.ml.preprocessing import Preprocessor
from churn_assets.ml.explain import converter_reference
from churn_assets.ml.scoring import score_with_reasons
from churn_assets.ml.segments import SAVE_LIST_DIR, SegmentConfig, save_list
from churn_assets.ml.spark_training import (
    TRAINER_PANDAS,
    TRAINER_SPARK,
    train_churn_model_on_spark,
    use_spark_training,
)
from churn_assets.partitions import cohort_weeks, labelled_weeks
from churn_assets.registry import (
    MissingArtefact,
    promoted_model_weeks,
    read_evaluation,
    read_model,
    revoke_promotion,
    write_promotion,
    read_preprocessor,
    read_scoring_rows,
    read_training_rows,
    read_truth,
    write_evaluation,
    write_model,
    write_predictions,
    write_preprocessor,
)
from churn_assets.settings import SETTINGS
from churn_assets.weeks import parse_week, week_key
from resources.storage import StorageRoot

# The talk trained on ~90 days of product usage: 13 cohort weeks, the newest labelled one last.
TRAINING_WINDOW_WEEKS = 13
training_window = dg.TimeWindowPartitionMapping(
    start_offset=-(TRAINING_WINDOW_WEEKS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
)
def window_week_keys(partition_key: str) -> list[str]:
    last = parse_week(partition_key)
    return [week_key(last - timedelta(weeks=i)) for i in reversed(range(TRAINING_WINDOW_WEEKS))]


def training_rows(context: dg.AssetExecutionContext, storage: StorageRoot):
    weeks = window_week_keys(context.partition_key)
    # Weeks before the platform's first week do not exist; a missing materialized week is a gap.
    first_known = labelled_weeks.get_first_partition_key()
    weeks = [w for w in weeks if w >= first_known]
    try:
        frame, missing = read_training_rows(storage, weeks)
    except MissingArtefact as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if missing:
        context.log.warning(f"training window {weeks[0]}..{weeks[-1]}: instances_modeling missing for {missing}")
    return frame, missing


class PreprocessorConfig(dg.Config):
    drop_columns: list[str] = list(DEFAULT_DROP_COLUMNS)


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
    partitions_def=labelled_weeks,
    deps=[dg.AssetDep(instances_modeling, partition_mapping=training_window)],
    group_name="model",
    kinds={"scikitlearn", "json"},
    owners=[OWNER],
    description=(
        "The talk's data prep, fitted once per model version on the training window (13 labelled "
        "cohort weeks ending at the partition): drop list, float32, median imputation, MaxAbsScaler. "
        "Stored as plain JSON (medians, scales, feature order); scoring applies it, never refits it."
    ),
)
def preprocessor(context: dg.AssetExecutionContext, config: PreprocessorConfig, storage: StorageRoot) -> dg.MaterializeResult:
    frame, missing = training_rows(context, storage)
    fitted = Preprocessor.fit(frame, drop=config.drop_columns)
    path = write_preprocessor(storage, context.partition_key, fitted)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "fitted_rows": fitted.fitted_rows,
            "features": list(fitted.feature_names),
            "medians": dict(zip(fitted.feature_names, fitted.medians)),
            "scales": dict(zip(fitted.feature_names, fitted.scales)),
            "missing_training_weeks": missing or "none",
        }
    )


class ChurnModelConfig(dg.Config):
    """The talk's tuned XGBoost hyper-parameters; edit them in the launchpad."""

    learning_rate: float = TALK_XGB_PARAMS["learning_rate"]
    n_estimators: int = TALK_XGB_PARAMS["n_estimators"]
    max_depth: int = TALK_XGB_PARAMS["max_depth"]
    min_child_weight: float = TALK_XGB_PARAMS["min_child_weight"]
    gamma: float = TALK_XGB_PARAMS["gamma"]
    subsample: float = TALK_XGB_PARAMS["subsample"]
    colsample_bytree: float = TALK_XGB_PARAMS["colsample_bytree"]
    colsample_bylevel: float = TALK_XGB_PARAMS["colsample_bylevel"]
    scale_pos_weight: float = TALK_XGB_PARAMS["scale_pos_weight"]
    random_state: int = TALK_XGB_PARAMS["random_state"]
    n_jobs: int = TALK_XGB_PARAMS["n_jobs"]
    threshold_folds: int = 5

    def xgb_params(self) -> dict:
        params = self.model_dump(exclude={"threshold_folds"})
        return {**TALK_XGB_PARAMS, **params}


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
    partitions_def=labelled_weeks,
    deps=[preprocessor, dg.AssetDep(instances_modeling, partition_mapping=training_window)],
    group_name="model",
    kinds={"xgboost"},
    owners=[OWNER],
    description=(
        "Weekly XGBoost model trained on the training window with the week's preprocessor; saved in "
        "XGBoost's own UBJSON format with a model card (training weeks, rows, positive rate, "
        "features, parameters, library versions, decision threshold, metrics)."
    ),
)
def churn_model(
    context: dg.AssetExecutionContext, config: ChurnModelConfig, storage: StorageRoot, spark: LazyPySparkResource
) -> dg.MaterializeResult:
    frame, missing = training_rows(context, storage)
    fitted = read_preprocessor(storage, context.partition_key)
    started = time.perf_counter()
    recipe = dict(
        model_version=context.partition_key,
        params=config.xgb_params(),
        threshold_folds=config.threshold_folds,
        preprocessor=fitted,
    )
    # Above CHURN_SPARK_TRAINING_MIN_ROWS rows the boosting runs on Spark (ml/spark_training.py);
    # the JVM starts only then (the resource is lazy).
    distributed = use_spark_training(len(frame))
    if distributed:
        trained = train_churn_model_on_spark(spark.spark_session, frame, **recipe)
    else:
        trained = train_churn_model(frame, **recipe)
    card = write_model(storage, context.partition_key, trained, converter_reference(frame))
    seconds = time.perf_counter() - started
    in_sample = next(iter(card.metrics.values()))
    return dg.MaterializeResult(
        metadata={
            "model_version": card.model_version,
            "training_weeks": f"{card.training_weeks[0]}..{card.training_weeks[-1]} ({len(card.training_weeks)})",
            "rows": card.rows,
            "positive_rate": round(card.positive_rate, 4),
            "decision_threshold": round(card.decision_threshold, 4),
            "threshold_rule": card.threshold_rule,
            "roc_auc_out_of_fold": round(in_sample["roc_auc"], 4),
            "train_seconds": round(seconds, 1),
            "trainer": TRAINER_SPARK if distributed else TRAINER_PANDAS,
            "missing_training_weeks": missing or "none",
        }
    )


class EvaluationConfig(dg.Config):
    out_of_time_test_weeks: int = 3
    talk_test_size: float = 0.33
    seed: int = 27
    threshold_folds: int = 5
    # The model gate: a new model scores evaluators only if its out-of-time ROC-AUC reaches the
    # floor and is at most `gate_margin` below the last promoted model's.
    gate_floor: float = 0.75
    gate_margin: float = 0.02


def evaluation_markdown(evaluation: dict) -> str:
    oot = evaluation["out_of_time"]
    rows = ["| metric | churn_model | oracle | all-negative baseline |", "|---|---|---|---|"]
    oracle = evaluation.get("oracle") or {}
    for metric in ("roc_auc", "pr_auc", "brier", "log_loss", "precision", "recall", "f1"):
        base = oot["baseline"].get(metric, "")
        rows.append(
            f"| {metric} | {oot[metric]:.4f} | {oracle[metric]:.4f} | {base if base == '' else f'{base:.4f}'} |"
            if oracle
            else f"| {metric} | {oot[metric]:.4f} | n/a | {base if base == '' else f'{base:.4f}'} |"
        )
    return "\n".join(rows)


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
    partitions_def=labelled_weeks,
    deps=[churn_model, dg.AssetDep(instances_modeling, partition_mapping=training_window)],
    group_name="model",
    kinds={"xgboost", "scikitlearn", "json"},
    owners=[OWNER],
    description=(
        "Model comparison and evaluation on the training window: the talk's protocol (random 0.33 "
        "split; logistic regression, XGBoost, random forest, MLP at 0.5) and, the way the model is "
        "used, out of time (train on older cohorts, test on the newest labelled ones): ROC-AUC, "
        "PR-AUC, Brier, log-loss, lift by decile, precision/recall at the decision threshold, "
        "beside the all-negative baseline and the oracle (simulated data only)."
    ),
)
def model_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, storage: StorageRoot) -> dg.MaterializeResult:
    frame, _ = training_rows(context, storage)
    model = read_model(storage, context.partition_key)
    started = time.perf_counter()
    talk = talk_protocol(frame, drop=model.preprocessor.drop, seed=config.seed, test_size=config.talk_test_size)
    truth = read_truth(storage)
    if truth is not None:
        truth = truth[truth["instance"].isin(frame["instance"])]
        if len(truth) < len(frame):  # data this simulator did not write: no oracle
            truth = None
    oot = out_of_time(
        frame,
        test_weeks=config.out_of_time_test_weeks,
        params=model.card.params,
        truth=truth,
        drop=model.preprocessor.drop,
        threshold_folds=config.threshold_folds,
    )
    evaluation = {
        "model_version": model.version,
        "week": context.partition_key,
        "talk_protocol": {name: result for name, result in talk["models"].items()},
        "talk_protocol_setup": {k: v for k, v in talk.items() if k != "models"},
        "out_of_time": {**oot["model"], "train": oot["train"], "test": oot["test"],
                        "threshold_rule": oot["threshold_rule"]},
    }
    if "oracle" in oot:
        evaluation["oracle"] = oot["oracle"]
        evaluation["auc_ratio_to_oracle"] = oot["auc_ratio_to_oracle"]
    previous = [w for w in promoted_model_weeks(storage) if w < context.partition_key]
    previous_auc = read_evaluation(storage, previous[-1])["out_of_time"]["roc_auc"] if previous else None
    gate = model_gate(oot["model"]["roc_auc"], previous_auc, config.gate_floor, config.gate_margin)
    gate["previous_model_week"] = previous[-1] if previous else None
    evaluation["gate"] = gate
    path = write_evaluation(storage, context.partition_key, evaluation)
    if gate["passed"]:
        write_promotion(storage, context.partition_key, {"model_version": model.version, **gate})
    else:
        revoke_promotion(storage, context.partition_key)
        context.log.warning(f"model {model.version} not promoted: {'; '.join(gate['reasons'])}")
    seconds = time.perf_counter() - started
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "model_version": model.version,
            "talk_protocol": dg.MetadataValue.md(markdown_talk_table(talk["models"])),
            "out_of_time": dg.MetadataValue.md(evaluation_markdown(evaluation)),
            "out_of_time_roc_auc": round(oot["model"]["roc_auc"], 4),
            "out_of_time_pr_auc": round(oot["model"]["pr_auc"], 4),
            "oracle_roc_auc": round(oot["oracle"]["roc_auc"], 4) if "oracle" in oot else "n/a",
            "promoted": gate["passed"],
            "gate": "passed" if gate["passed"] else "; ".join(gate["reasons"]),
            "seconds": round(seconds, 1),
        }
    )


@dg.asset_check(asset=model_evaluation, blocking=True, partitions_def=labelled_weeks)
def model_gate_passed(context: dg.AssetCheckExecutionContext, storage: StorageRoot) -> dg.AssetCheckResult:
    """The model gate: a model that fails it is not promoted, and predictions keep the last one that passed."""
    gate = read_evaluation(storage, context.partition_key)["gate"]
    return dg.AssetCheckResult(
        passed=bool(gate["passed"]),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"model_evaluation week={context.partition_key}: "
            + ("model promoted" if gate["passed"] else "; ".join(gate["reasons"]))
        ),
        metadata={k: v for k, v in gate.items() if k != "reasons" and v is not None},
    )


def scoring_model_week(storage: StorageRoot, scoring_week: str) -> str:
    """The newest promoted model trained before `scoring_week` began.

    Scoring this week's evaluators daily uses the newest model that passed the gate, as the talk
    scored with its latest model; re-scoring an old week never uses a model trained on cohorts at
    or after it, and a model that failed the gate never scores.
    """
    candidates = [w for w in promoted_model_weeks(storage) if w < scoring_week]
    if not candidates:
        raise dg.Failure(
            description=(
                f"predictions {scoring_week}: no promoted churn_model trained before this cohort "
                "week; materialize churn_model and model_evaluation for a labelled week first"
            ),
            allow_retries=False,
        )
    return candidates[-1]


class SegmentSettings(dg.Config):
    """Segment definitions (README, "Segments"); the defaults are SegmentConfig's."""

    swing_band: float = SegmentConfig.swing_band
    save_floor_ratio: float = SegmentConfig.save_floor_ratio
    engagement_feature: str = SegmentConfig.engagement_feature
    min_engagement: float = SegmentConfig.min_engagement
    outreach_lift_log_odds: float = SegmentConfig.outreach_lift_log_odds
    value_per_conversion: float = SegmentConfig.value_per_conversion


@dg.asset(
    retry_policy=SETTINGS.step_retry_policy(),
    partitions_def=cohort_weeks,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[instances_w1, dg.AssetDep(churn_model, partition_mapping=dg.LastPartitionMapping())],
    group_name="scoring",
    kinds={"xgboost", "csv"},
    owners=[OWNER],
    description=(
        "Every instances_w1 row scored by the newest promoted model trained before its cohort week: "
        "prediction_retained (0/1 at the model's decision threshold), retain_probability, "
        "model_version, segment and top_reasons; one CSV per cohort week "
        f"under {PREDICTIONS_DIR}/. The week in progress is re-scored as its usage lands."
    ),
)
def predictions(
    context: dg.AssetExecutionContext, config: SegmentSettings, storage: StorageRoot
) -> dg.MaterializeResult:
    segments = SegmentConfig(**config.model_dump())
    rows_by_week, versions, segment_counts = {}, {}, {}
    for week in context.partition_keys:
        try:
            rows = read_scoring_rows(storage, week)
        except MissingArtefact as exc:
            raise dg.Failure(description=f"predictions {week}: {exc}", allow_retries=False) from exc
        model = read_model(storage, scoring_model_week(storage, week))
        scored = score_with_reasons(
            rows, model.preprocessor, model.booster, model.threshold, model.version,
            model.converter_reference, segments,
        )
        write_predictions(storage, week, scored)
        storage.write_csv(f"{SAVE_LIST_DIR}/{week}.csv", save_list(scored, segments))
        segment_counts[week] = scored["segment"].value_counts().to_dict()
        rows_by_week[week] = len(scored)
        versions[week] = model.version
        context.log.info(f"predictions {week}: {len(scored)} rows scored by model {model.version}")
    return dg.MaterializeResult(
        metadata={
            "model_version": ", ".join(sorted(set(versions.values()))),
            "rows": sum(rows_by_week.values()),
            "rows_by_week": rows_by_week,
            "model_version_by_week": versions,
            "segments_by_week": segment_counts,
            "save_list": dg.MetadataValue.path(storage.uri(SAVE_LIST_DIR)),
            "path": dg.MetadataValue.path(storage.uri(PREDICTIONS_DIR)),
        }
    )
