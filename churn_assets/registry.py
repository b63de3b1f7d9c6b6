"""Reading and writing the platform's tables and artefacts under the storage root.

Layout (the contract fixes the tables; the artefacts' format is ours, and none is a pickle):
- models/instances_modeling/v0/WEEK.csv, models/instances_w1/v0/WEEK.csv, models/predictions/v0/WEEK.csv
- models/preprocessor/v0/WEEK.json                 the preprocessor fitted for the model of WEEK
- models/churn_model/v0/WEEK/model.ubj             XGBoost's own binary JSON
- models/churn_model/v0/WEEK/preprocessor.json     the copy it was trained with, so the pair never drifts
- models/churn_model/v0/WEEK/converter_reference.json  typical week-1 values of converters (for reasons)
- models/churn_model/v0/WEEK/card.json             the model card, written last
- models/churn_model/v0/WEEK/promotion.json        present once the model passed the gate
- models/save_list/v0/WEEK.csv                     who marketing should contact, ranked
- models/evaluation/v0/WEEK.json                   model comparison and out-of-time metrics
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import xgboost

from churn_assets.contract import (
    CHURN_MODEL_DIR,
    EVALUATION_DIR,
    INSTANCES_MODELING_DIR,
    INSTANCES_W1_DIR,
    PREDICTIONS_DIR,
    PREPROCESSOR_DIR,
    TRUTH,
    W1_DAILY_USAGE_DIR,
)
from churn_assets.ml.explain import CONVERTER_REFERENCE_FILE, reference_from_json, reference_to_json
from churn_assets.ml.model import ModelCard, TrainedModel, model_from_bytes, model_to_bytes
from churn_assets.ml.preprocessing import Preprocessor
from resources.storage import StorageRoot

MODEL_FILE = "model.ubj"


class MissingArtefact(FileNotFoundError):
    """An input another asset should have written is not under the storage root."""


def _read_weekly_csv(storage: StorageRoot, folder: str, week: str) -> pd.DataFrame:
    relative = f"{folder}/{week}.csv"
    if not storage.exists(relative):
        raise MissingArtefact(f"{storage.uri(relative)} does not exist: materialize week {week} first")
    return storage.read_csv(relative, dtype={"eval_start_date": str, "model_version": str})


def read_training_rows(storage: StorageRoot, weeks: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """instances_modeling rows of the weeks that exist, and the weeks that do not."""
    frames, missing = [], []
    for week in weeks:
        try:
            frames.append(_read_weekly_csv(storage, INSTANCES_MODELING_DIR, week))
        except MissingArtefact:
            missing.append(week)
    if not frames:
        raise MissingArtefact(f"no instances_modeling week among {weeks[0]}..{weeks[-1]} has been materialized")
    return pd.concat(frames, ignore_index=True), missing


def read_daily_usage(storage: StorageRoot, weeks: list[str]) -> pd.DataFrame:
    """The week-1 usage day by day that instances_modeling wrote for `weeks` (every one needed)."""
    return pd.concat([_read_weekly_csv(storage, W1_DAILY_USAGE_DIR, week) for week in weeks], ignore_index=True)


def read_scoring_rows(storage: StorageRoot, week: str) -> pd.DataFrame:
    return _read_weekly_csv(storage, INSTANCES_W1_DIR, week)


def read_predictions(storage: StorageRoot, week: str) -> pd.DataFrame:
    return _read_weekly_csv(storage, PREDICTIONS_DIR, week)


def write_predictions(storage: StorageRoot, week: str, predictions: pd.DataFrame) -> str:
    return storage.write_csv(f"{PREDICTIONS_DIR}/{week}.csv", predictions)


def write_preprocessor(storage: StorageRoot, week: str, preprocessor: Preprocessor) -> str:
    return storage.write_text(f"{PREPROCESSOR_DIR}/{week}.json", preprocessor.to_json())


def read_preprocessor(storage: StorageRoot, week: str) -> Preprocessor:
    relative = f"{PREPROCESSOR_DIR}/{week}.json"
    if not storage.exists(relative):
        raise MissingArtefact(f"{storage.uri(relative)} does not exist: materialize preprocessor {week} first")
    return Preprocessor.from_json(storage.read_text(relative))


@dataclass(frozen=True)
class StoredModel:
    """A model version as scoring uses it: nothing here was unpickled."""

    week: str
    preprocessor: Preprocessor
    booster: xgboost.Booster
    card: ModelCard
    converter_reference: dict[str, float] | None  # typical week-1 values of converters, for reasons

    @property
    def version(self) -> str:
        return self.card.model_version

    @property
    def threshold(self) -> float:
        return self.card.decision_threshold


def model_version_for(week: str, model_bytes: bytes) -> str:
    """WEEK-<content hash>: the week it was trained for, and which bytes exactly."""
    return f"{week}-{hashlib.sha256(model_bytes).hexdigest()[:8]}"


def write_model(
    storage: StorageRoot, week: str, trained: TrainedModel, converter_reference: dict[str, float]
) -> ModelCard:
    """Store model, preprocessor, converter reference and card; the version names week and bytes.

    The card is written last: a folder without card.json is an unfinished write and is never loaded.
    """
    model_bytes = model_to_bytes(trained.classifier, "ubj")
    card = replace(trained.card, model_version=model_version_for(week, model_bytes))
    folder = f"{CHURN_MODEL_DIR}/{week}"
    storage.write_bytes(f"{folder}/{MODEL_FILE}", model_bytes)
    storage.write_text(f"{folder}/preprocessor.json", trained.preprocessor.to_json())
    storage.write_text(f"{folder}/{CONVERTER_REFERENCE_FILE}", reference_to_json(converter_reference))
    storage.write_text(f"{folder}/card.json", card.to_json())
    return card


def model_weeks(storage: StorageRoot) -> list[str]:
    """Weeks with a complete stored model, oldest first."""
    return [w for w in storage.list_names(CHURN_MODEL_DIR) if storage.exists(f"{CHURN_MODEL_DIR}/{w}/card.json")]


def read_model(storage: StorageRoot, week: str) -> StoredModel:
    folder = f"{CHURN_MODEL_DIR}/{week}"
    if not storage.exists(f"{folder}/card.json"):
        raise MissingArtefact(f"{storage.uri(folder)} holds no complete model: materialize churn_model {week} first")
    return StoredModel(
        week=week,
        preprocessor=Preprocessor.from_json(storage.read_text(f"{folder}/preprocessor.json")),
        booster=model_from_bytes(storage.read_bytes(f"{folder}/{MODEL_FILE}")),
        card=ModelCard.from_json(storage.read_text(f"{folder}/card.json")),
        converter_reference=reference_from_json(storage.read_text(f"{folder}/{CONVERTER_REFERENCE_FILE}"))
        if storage.exists(f"{folder}/{CONVERTER_REFERENCE_FILE}")
        else None,
    )


def write_promotion(storage: StorageRoot, week: str, record: dict[str, Any]) -> str:
    """Mark the model of `week` as one that passed the gate: only promoted models score."""
    return storage.write_text(f"{CHURN_MODEL_DIR}/{week}/promotion.json", json.dumps(record, indent=2))


def revoke_promotion(storage: StorageRoot, week: str) -> None:
    """A re-trained week that fails the gate must not keep its earlier promotion."""
    storage.delete(f"{CHURN_MODEL_DIR}/{week}/promotion.json")


def promoted_model_weeks(storage: StorageRoot) -> list[str]:
    """Weeks whose stored model passed the gate, oldest first."""
    return [w for w in model_weeks(storage) if storage.exists(f"{CHURN_MODEL_DIR}/{w}/promotion.json")]


def read_promotion(storage: StorageRoot, week: str) -> dict[str, Any]:
    return json.loads(storage.read_text(f"{CHURN_MODEL_DIR}/{week}/promotion.json"))


def write_evaluation(storage: StorageRoot, week: str, evaluation: dict[str, Any]) -> str:
    return storage.write_text(f"{EVALUATION_DIR}/{week}.json", json.dumps(evaluation, indent=2, allow_nan=False))


def read_evaluation(storage: StorageRoot, week: str) -> dict[str, Any]:
    relative = f"{EVALUATION_DIR}/{week}.json"
    if not storage.exists(relative):
        raise MissingArtefact(f"{storage.uri(relative)} does not exist: materialize model_evaluation {week} first")
    return json.loads(storage.read_text(relative))


def read_truth(storage: StorageRoot) -> pd.DataFrame | None:
    """The simulator's true conversion probabilities (instance, true_probability), when present."""
    if not storage.exists(TRUTH):
        return None
    table = ds.dataset(storage.local_folder(TRUTH), format="parquet", partitioning="hive").to_table(
        columns=["instance", "true_probability"]
    )
    return table.to_pandas()

