"""Distributed training of the churn model with `xgboost.spark`, for training windows too large
for one machine.

The recipe is `train_churn_model`'s, step for step, with only the boosting moved to Spark:
- the preprocessor is fitted once with pandas (or the week's stored one is used) and applied on
  the driver, so the Spark workers train on exactly the matrix the pandas path trains on and
  scoring applies the same stored numbers;
- the talk's hyper-parameters go to `SparkXGBClassifier` unchanged, minus what it sets itself
  (`objective`: binary:logistic for two classes; `n_jobs`/`nthread`: `spark.task.cpus` per worker);
- the trained booster is wrapped in an `XGBClassifier` (`classifier_from_booster`), so
  `registry.write_model` stores it as the same UBJSON file and `read_model` and scoring use it
  unchanged.

Which path trains is decided by the number of training rows: above `CHURN_SPARK_TRAINING_MIN_ROWS`
(default 2,000,000, about 35 times the talk's 57,700-row window, so local runs never use Spark).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from sklearn.model_selection import train_test_split

from churn_assets.contract import DEFAULT_DROP_COLUMNS, LABEL_COLUMN
from churn_assets.ml.model import (
    TALK_XGB_PARAMS,
    THRESHOLD_RULE_HELD_OUT,
    THRESHOLD_RULE_IN_SAMPLE,
    TrainedModel,
    choose_threshold,
    classifier_from_booster,
    predict_proba,
    training_card,
)
from churn_assets.ml.preprocessing import Preprocessor, labels

SPARK_TRAINING_MIN_ROWS_ENV = "CHURN_SPARK_TRAINING_MIN_ROWS"
DEFAULT_SPARK_TRAINING_MIN_ROWS = 2_000_000
SPARK_TRAINING_WORKERS_ENV = "CHURN_SPARK_TRAINING_WORKERS"
# Set by SparkXGBClassifier itself: the objective from the label's classes, the threads per
# worker from spark.task.cpus. Any other value of these is refused rather than silently changed.
SPARK_MANAGED_PARAMS = ("objective", "n_jobs", "nthread")
TRAINER_PANDAS = "xgboost"
TRAINER_SPARK = "xgboost.spark"


def spark_training_min_rows() -> int:
    """Training rows above which the model trains on Spark (CHURN_SPARK_TRAINING_MIN_ROWS)."""
    raw = os.environ.get(SPARK_TRAINING_MIN_ROWS_ENV, "").strip()
    if not raw:
        return DEFAULT_SPARK_TRAINING_MIN_ROWS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{SPARK_TRAINING_MIN_ROWS_ENV}={raw!r} is not a whole number of rows") from None
    if value < 0:
        raise ValueError(f"{SPARK_TRAINING_MIN_ROWS_ENV}={raw!r} must be >= 0")
    return value


def use_spark_training(rows: int, min_rows: int | None = None) -> bool:
    """True when `rows` training rows exceed the threshold (`min_rows`, else the env setting)."""
    return rows > (spark_training_min_rows() if min_rows is None else min_rows)


def spark_xgb_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The pandas path's XGBClassifier parameters as SparkXGBClassifier takes them."""
    objective = params.get("objective", "binary:logistic")
    if objective != "binary:logistic":
        raise ValueError(f"distributed training supports objective 'binary:logistic' only, got {objective!r}")
    return {key: value for key, value in params.items() if key not in SPARK_MANAGED_PARAMS}


def default_num_workers(spark) -> int:
    """CHURN_SPARK_TRAINING_WORKERS, else one worker per task slot Spark reports.

    xgboost.spark trains in one barrier stage: all workers must run at once, so there must be at
    least as many free task slots (cores / spark.task.cpus) as workers.
    """
    raw = os.environ.get(SPARK_TRAINING_WORKERS_ENV, "").strip()
    if raw:
        return max(1, int(raw))
    context = spark.sparkContext
    task_cpus = int(context.getConf().get("spark.task.cpus", "1"))
    return max(1, context.defaultParallelism // task_cpus)


@contextlib.contextmanager
def local_python_workers(spark) -> Iterator[None]:
    """In local mode, Python workers run this interpreter (the one with xgboost and pandas).

    PySpark starts workers with PYSPARK_PYTHON, else whatever `python3` is on the PATH: outside a
    virtualenv's activation that is another interpreter, without the project's packages. SQL-only
    jobs never start Python workers; xgboost.spark does. Clusters are configured in
    resources/spark.py (`spark.pyspark.python`).
    """
    context = spark.sparkContext
    if not context.master.startswith("local") or os.environ.get("PYSPARK_PYTHON"):
        yield
        return
    previous = context.pythonExec
    context.pythonExec = sys.executable
    try:
        yield
    finally:
        context.pythonExec = previous


def fit_booster_on_spark(
    spark,
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    num_workers: int | None = None,
) -> xgboost.Booster:
    """XGBoost trained by `num_workers` Spark tasks on the preprocessed matrix X and labels y."""
    from xgboost.spark import SparkXGBClassifier

    if type(spark).__module__.startswith("pyspark.sql.connect"):
        raise RuntimeError(
            "distributed training needs a classic Spark session (CHURN_SPARK_MASTER): xgboost.spark "
            "runs barrier tasks through the SparkContext, which Spark Connect (CHURN_SPARK_REMOTE) lacks"
        )
    targets = np.asarray(y, dtype=np.int32)
    if targets.min() == targets.max():
        raise ValueError(f"cannot train on one class only (every label is {int(targets[0])})")
    columns = list(feature_names)
    rows = pd.DataFrame(np.asarray(X, dtype=np.float32), columns=columns)
    rows[LABEL_COLUMN] = targets
    workers = num_workers or default_num_workers(spark)
    estimator = SparkXGBClassifier(
        features_col=columns,
        label_col=LABEL_COLUMN,
        num_workers=workers,
        verbose=False,  # no per-round training log-loss lines in the run's logs
        **spark_xgb_params(params),
    )
    with local_python_workers(spark):
        model = estimator.fit(spark.createDataFrame(rows))
    booster = model.get_booster()
    booster.feature_names = columns
    return booster


def train_churn_model_on_spark(
    spark,
    frame: pd.DataFrame,
    model_version: str,
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    drop: Iterable[str] = DEFAULT_DROP_COLUMNS,
    threshold_folds: int | None = 5,
    preprocessor: Preprocessor | None = None,
    num_workers: int | None = None,
) -> TrainedModel:
    """`train_churn_model` with the boosting on Spark; the same TrainedModel, card and file format.

    The decision threshold. The pandas path picks it on out-of-fold probabilities, which costs
    `threshold_folds` extra trainings; at the sizes this path is for, that is `threshold_folds`
    extra distributed jobs. Here ONE fold of that split is held out instead: a model trained on
    the other (threshold_folds - 1)/threshold_folds of the rows predicts the held-out
    1/threshold_folds (stratified, seeded by `random_state`), and the F1-maximising threshold is
    chosen on those probabilities (rule `max_f1_held_out`). The held-out fraction is at least
    hundreds of thousands of rows here, so the threshold is as stable as the out-of-fold one, at
    two trainings instead of threshold_folds + 1. Both models use the preprocessor fitted once on
    all rows (median and max-abs scale: XGBoost's splits do not depend on the scale, and the
    median barely moves). The stored model is then trained on ALL rows, as in the pandas path.
    `threshold_folds=None` picks the threshold in-sample (one training; biased high).
    """
    drop = tuple(drop)
    if preprocessor is None:
        preprocessor = Preprocessor.fit(frame, drop)
    targets = labels(frame)
    X = preprocessor.transform(frame)
    names = preprocessor.feature_names
    if threshold_folds is None:
        rule = THRESHOLD_RULE_IN_SAMPLE
    else:
        if threshold_folds < 2:
            raise ValueError(f"threshold_folds must be >= 2 (or None), got {threshold_folds}")
        rule = THRESHOLD_RULE_HELD_OUT
        fit_rows, held_out_rows = train_test_split(
            np.arange(targets.size),
            test_size=1 / threshold_folds,
            stratify=targets,
            random_state=params.get("random_state", 27),
        )
        held_out_model = fit_booster_on_spark(spark, X[fit_rows], targets[fit_rows], names, params, num_workers)
        threshold_targets = targets[held_out_rows]
        threshold_proba = predict_proba(held_out_model, X[held_out_rows], names)
    booster = fit_booster_on_spark(spark, X, targets, names, params, num_workers)
    if threshold_folds is None:
        threshold_targets, threshold_proba = targets, predict_proba(booster, X, names)
    threshold = choose_threshold(threshold_targets, threshold_proba)
    card = training_card(frame, model_version, names, params, rule, threshold, threshold_targets, threshold_proba)
    return TrainedModel(preprocessor, classifier_from_booster(booster), threshold, card)
