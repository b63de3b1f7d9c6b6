"""The talk's XGBoost model: training, pickle-free persistence, decision threshold, model card.

The talk persisted its model with joblib (pickle): loading such a file runs whatever code it
contains, and it breaks across library versions. Models here are stored in XGBoost's own JSON or
UBJSON format, which the loader parses as data; preprocessing and the card are plain JSON too.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import xgboost
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import StratifiedKFold

from churn_assets.contract import DEFAULT_DROP_COLUMNS
from churn_assets.ml.metrics import as_binary_labels, as_probabilities, probability_metrics
from churn_assets.ml.preprocessing import Preprocessor, labels, require_columns
from churn_assets.weeks import week_key, week_of

# The talk's tuned hyper-parameters, in today's XGBoost names (nthread -> n_jobs, seed ->
# random_state). Read-only: copy with dict(...) to change one.
TALK_XGB_PARAMS: Mapping[str, Any] = MappingProxyType({
    "learning_rate": 0.1,
    "n_estimators": 200,
    "max_depth": 3,
    "min_child_weight": 6,
    "gamma": 0,
    "subsample": 0.5,
    "colsample_bytree": 1.0,
    "colsample_bylevel": 1.0,
    "objective": "binary:logistic",
    "n_jobs": -1,
    "scale_pos_weight": 1,
    "random_state": 27,
})

MODEL_FILE_SUFFIXES = {".ubj": "ubj", ".json": "json"}
MODEL_CARD_FORMAT = "churn_assets.model_card"
MODEL_CARD_FORMAT_VERSION = 1
THRESHOLD_RULE_OUT_OF_FOLD = "max_f1_out_of_fold"
THRESHOLD_RULE_IN_SAMPLE = "max_f1_in_sample"
THRESHOLD_RULE_HELD_OUT = "max_f1_held_out"  # distributed training (ml/spark_training.py)

Model = xgboost.Booster | xgboost.XGBClassifier


def train_xgboost(
    X: np.ndarray,
    y: Any,
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    feature_names: Sequence[str] | None = None,
) -> xgboost.XGBClassifier:
    """Fit an XGBClassifier; `feature_names` are written into the model so a saved file says
    which preprocessed columns it expects (checked by `predict_proba`)."""
    targets = as_binary_labels(y)
    if targets.min() == targets.max():
        raise ValueError(f"cannot train on one class only (every label is {int(targets[0])})")
    classifier = xgboost.XGBClassifier(**dict(params))
    classifier.fit(X, targets)
    if feature_names is not None:
        classifier.get_booster().feature_names = list(feature_names)
    return classifier


def as_booster(model: Model) -> xgboost.Booster:
    return model.get_booster() if isinstance(model, xgboost.XGBClassifier) else model


def classifier_from_booster(booster: xgboost.Booster) -> xgboost.XGBClassifier:
    """An XGBClassifier around a booster trained elsewhere (e.g. by xgboost.spark), through the
    booster's own UBJSON bytes, so it saves, loads and predicts like one trained here."""
    classifier = xgboost.XGBClassifier()
    classifier.load_model(bytearray(booster.save_raw(raw_format="ubj")))
    return classifier


def model_to_bytes(model: Model, model_format: str = "ubj") -> bytes:
    """The model in XGBoost's own format, `ubj` (UBJSON, compact) or `json` (readable)."""
    if model_format not in MODEL_FILE_SUFFIXES.values():
        raise ValueError(f"model format must be 'ubj' or 'json', got {model_format!r}")
    return bytes(as_booster(model).save_raw(raw_format=model_format))


def model_from_bytes(raw: bytes) -> xgboost.Booster:
    """Load an XGBoost JSON/UBJSON model. Anything else (a pickle, joblib file) is refused
    before XGBoost sees it: both formats start with `{`, a pickle never does."""
    if not raw.lstrip()[:1] == b"{":
        raise ValueError(
            "refusing to load: not an XGBoost JSON/UBJSON model (pickle/joblib files are never loaded)"
        )
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    return booster


def save_model(model: Model, path: str | Path) -> Path:
    """Write the model to `path`; the suffix (.ubj or .json) picks the format."""
    path = Path(path)
    if path.suffix not in MODEL_FILE_SUFFIXES:
        raise ValueError(f"model file must end in .ubj or .json, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model_to_bytes(model, MODEL_FILE_SUFFIXES[path.suffix]))
    return path


def load_model(path: str | Path) -> xgboost.Booster:
    return model_from_bytes(Path(path).read_bytes())


def predict_proba(model: Model, X: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
    """Probability of retained = 1 for each row of X, as float64.

    A fresh classifier and the same model loaded from disk go through the same booster call, so
    their probabilities are identical; each row is predicted on its own, so batches don't matter.
    `feature_names` (the preprocessor's) are checked against the names stored in the model.
    """
    booster = as_booster(model)
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective != "binary:logistic":
        raise ValueError(f"expected a binary:logistic model, got objective {objective!r}")
    matrix = np.asarray(X, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != booster.num_features():
        raise ValueError(f"model expects {booster.num_features()} feature columns, got shape {matrix.shape}")
    if feature_names is not None and booster.feature_names is not None:
        if list(feature_names) != list(booster.feature_names):
            raise ValueError(
                f"features {list(feature_names)} do not match the model's {booster.feature_names}"
            )
    if matrix.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(booster.inplace_predict(matrix), dtype=np.float64)


def choose_threshold(y_true: Any, proba: Any, beta: float = 1.0) -> float:
    """Decision threshold that maximises F-beta (default F1) on the given labels and probabilities.

    Why F1 and not the talk's implicit 0.5: about a quarter of evaluators convert, so at 0.5 the
    model favours the majority and misses many convertors (the talk's recall was 0.47-0.64). Which
    mistake costs more (a wasted sales touch or a missed convertor) is a business decision nobody
    has priced; F1 weighs precision and recall of the converting class equally and needs no costs.
    Pass beta > 1 when missing a convertor is worse. The threshold is one of the given
    probabilities (predictions are `proba >= threshold`); give it probabilities the model did
    not train on (out-of-fold), since in-sample ones are over-confident.
    """
    probabilities = as_probabilities(proba)
    targets = as_binary_labels(y_true)
    if targets.shape != probabilities.shape:
        raise ValueError(f"{targets.size} labels but {probabilities.size} probabilities")
    if not targets.any():
        raise ValueError("cannot choose a threshold without any positive label")
    precision, recall, thresholds = precision_recall_curve(targets, probabilities)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denominator = beta**2 * precision + recall
    f_beta = np.divide((1 + beta**2) * precision * recall, denominator,
                       out=np.zeros_like(denominator), where=denominator > 0)
    return float(thresholds[int(np.argmax(f_beta))])


def cohort_week_keys(frame: pd.DataFrame) -> pd.Series:
    """Each row's cohort week: the Monday (`YYYY-MM-DD`) of its eval_start_date."""
    require_columns(frame, ["eval_start_date"])
    dates = pd.to_datetime(frame["eval_start_date"], errors="coerce")
    if dates.isna().any():
        raise ValueError(f"{int(dates.isna().sum())} row(s) have a missing or unparsable eval_start_date")
    days = dates.dt.date
    return days.map({day: week_key(week_of(day)) for day in days.unique()})


def week_range(weeks: Iterable[str]) -> dict[str, Any]:
    """{"first", "last", "weeks"} of a set of week keys, sorted (ISO keys sort chronologically)."""
    ordered = sorted(set(weeks))
    return {"first": ordered[0] if ordered else None, "last": ordered[-1] if ordered else None, "weeks": ordered}


def library_versions() -> dict[str, str]:
    return {
        "xgboost": xgboost.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class ModelCard:
    """What a stored model is, how it was made and how good it looked: plain JSON beside it."""

    model_version: str
    training_weeks: tuple[str, ...]
    rows: int
    positive_rate: float
    feature_names: tuple[str, ...]
    params: dict[str, Any]
    decision_threshold: float
    threshold_rule: str
    metrics: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=library_versions)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "training_weeks", tuple(sorted(set(self.training_weeks))))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "params", dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["training_weeks"] = week_range(self.training_weeks)
        data["feature_names"] = list(self.feature_names)
        return {"format": MODEL_CARD_FORMAT, "version": MODEL_CARD_FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        if data.get("format") != MODEL_CARD_FORMAT or data.get("version") != MODEL_CARD_FORMAT_VERSION:
            raise ValueError(
                f"not a {MODEL_CARD_FORMAT} version {MODEL_CARD_FORMAT_VERSION} document: "
                f"format={data.get('format')!r}, version={data.get('version')!r}"
            )
        fields = {key: value for key, value in data.items() if key not in ("format", "version")}
        fields["training_weeks"] = fields["training_weeks"]["weeks"]
        return cls(**fields)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class TrainedModel:
    """Everything scoring needs: the preprocessor, the model, its threshold, and its card."""

    preprocessor: Preprocessor
    classifier: xgboost.XGBClassifier
    threshold: float
    card: ModelCard

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return predict_proba(self.classifier, self.preprocessor.transform(frame), self.preprocessor.feature_names)


def fit_pipeline(
    frame: pd.DataFrame,
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    drop: Iterable[str] = DEFAULT_DROP_COLUMNS,
    preprocessor: Preprocessor | None = None,
) -> tuple[Preprocessor, xgboost.XGBClassifier]:
    """Preprocessor and XGBoost fitted on the labelled rows of `frame`, and nothing else.

    A `preprocessor` already fitted on these rows (the weekly `preprocessor` artefact) is used as
    it is, so the model version and its preprocessing are one fit.
    """
    preprocessor = preprocessor or Preprocessor.fit(frame, drop)
    classifier = train_xgboost(
        preprocessor.transform(frame), labels(frame), params, preprocessor.feature_names
    )
    return preprocessor, classifier


def out_of_fold_proba(
    frame: pd.DataFrame,
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    drop: Iterable[str] = DEFAULT_DROP_COLUMNS,
    folds: int = 5,
) -> np.ndarray:
    """Each row's probability from the whole pipeline fitted without that row (stratified folds).

    Fewer folds are used when the rarer class has fewer rows than `folds`.
    """
    targets = labels(frame)
    rarer_class_rows = int(min(targets.sum(), targets.size - targets.sum()))
    n_splits = min(folds, rarer_class_rows)
    if n_splits < 2:
        raise ValueError(f"out-of-fold prediction needs >= 2 rows of each class, the rarer has {rarer_class_rows}")
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=params.get("random_state", 27))
    proba = np.empty(targets.size, dtype=np.float64)
    for fit_rows, held_out_rows in splitter.split(np.zeros(targets.size), targets):
        preprocessor, classifier = fit_pipeline(frame.iloc[fit_rows], params, drop)
        proba[held_out_rows] = predict_proba(classifier, preprocessor.transform(frame.iloc[held_out_rows]))
    return proba


def train_churn_model(
    frame: pd.DataFrame,
    model_version: str,
    params: Mapping[str, Any] = TALK_XGB_PARAMS,
    drop: Iterable[str] = DEFAULT_DROP_COLUMNS,
    threshold_folds: int | None = 5,
    preprocessor: Preprocessor | None = None,
) -> TrainedModel:
    """The production training recipe, shared by the weekly model and the out-of-time backtest.

    Fits the preprocessor and XGBoost on all rows of `frame`, and picks the F1-maximising
    threshold on out-of-fold probabilities of those rows (`threshold_folds` folds; None picks it
    in-sample, faster but biased towards a threshold that is too high for unseen evaluators). The
    card's metrics hold the probability metrics on the rows the threshold was chosen on.
    """
    drop = tuple(drop)
    targets = labels(frame)
    if preprocessor is not None:
        drop = preprocessor.drop
    preprocessor, classifier = fit_pipeline(frame, params, drop, preprocessor)
    if threshold_folds is None:
        rule, threshold_proba = THRESHOLD_RULE_IN_SAMPLE, predict_proba(classifier, preprocessor.transform(frame))
    else:
        rule, threshold_proba = THRESHOLD_RULE_OUT_OF_FOLD, out_of_fold_proba(frame, params, drop, threshold_folds)
    threshold = choose_threshold(targets, threshold_proba)
    card = training_card(frame, model_version, preprocessor.feature_names, params, rule, threshold, targets, threshold_proba)
    return TrainedModel(preprocessor, classifier, threshold, card)


def training_card(
    frame: pd.DataFrame,
    model_version: str,
    feature_names: Sequence[str],
    params: Mapping[str, Any],
    threshold_rule: str,
    threshold: float,
    threshold_targets: np.ndarray,
    threshold_proba: np.ndarray,
) -> ModelCard:
    """The card of a model trained on all rows of `frame`, whose threshold was chosen (by
    `threshold_rule`) on `threshold_proba` of `threshold_targets`; its metrics are on those rows."""
    targets = labels(frame)
    return ModelCard(
        model_version=model_version,
        training_weeks=tuple(cohort_week_keys(frame).unique()),
        rows=int(targets.size),
        positive_rate=float(targets.mean()),
        feature_names=tuple(feature_names),
        params=dict(params),
        decision_threshold=threshold,
        threshold_rule=threshold_rule,
        metrics={threshold_rule: probability_metrics(threshold_targets, threshold_proba, threshold)},
    )
