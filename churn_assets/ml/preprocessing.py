"""The talk's data prep (median imputation, then max-abs scaling) as a fitted, storable object.

The talk refitted its imputer and scaler on whatever it was predicting, so an evaluator's features
were scaled by the batch it happened to arrive in, and the training-time scaling was lost. Here the
statistics are learnt once, by scikit-learn, on the training rows; afterwards `transform` is plain
arithmetic from the stored numbers, the same function for training and scoring, and the numbers
travel as JSON (loading them never executes code, unlike a pickled scikit-learn object).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MaxAbsScaler

from churn_assets.contract import DEFAULT_DROP_COLUMNS, FEATURE_COLUMNS, LABEL_COLUMN
from churn_assets.ml.metrics import as_binary_labels

PREPROCESSOR_FORMAT = "churn_assets.preprocessor"
PREPROCESSOR_FORMAT_VERSION = 1


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str = "frame") -> None:
    """Raise ValueError naming every column of `columns` that `frame` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s): {', '.join(missing)}")


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The `retained` column as int32 0/1 (the talk's `y`); ValueError if absent or not binary."""
    require_columns(frame, [LABEL_COLUMN], "labelled frame")
    return as_binary_labels(frame[LABEL_COLUMN].to_numpy())


def selected_features(drop: Iterable[str] = DEFAULT_DROP_COLUMNS) -> tuple[str, ...]:
    """The contract's features minus `drop`, in contract order (the order the model sees)."""
    dropped = set(drop)
    return tuple(name for name in FEATURE_COLUMNS if name not in dropped)


def feature_matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """`frame`'s features as float32 (the talk's single precision), NaN where a value is missing.

    Extra columns are ignored. Infinite values are rejected: counts are never infinite, and an
    infinity would pass through imputation and scaling into the model unnoticed.
    """
    require_columns(frame, feature_names, "feature frame")
    matrix = frame.loc[:, list(feature_names)].to_numpy(dtype=np.float32, na_value=np.nan)
    infinite_columns = [name for name, bad in zip(feature_names, np.isinf(matrix).any(axis=0)) if bad]
    if infinite_columns:
        raise ValueError(f"infinite values in feature column(s): {', '.join(infinite_columns)}")
    return matrix


@dataclass(frozen=True)
class Preprocessor:
    """Median imputation then max-abs scaling, with the statistics of the rows it was fitted on.

    `medians[i]` replaces a missing `feature_names[i]`; the imputed value is then divided by
    `scales[i]` (the column's largest absolute imputed training value, or 1.0 for a column that was
    all zero or all missing, so nothing divides by zero).
    """

    feature_names: tuple[str, ...]
    medians: tuple[float, ...]
    scales: tuple[float, ...]
    drop: tuple[str, ...] = DEFAULT_DROP_COLUMNS
    fitted_rows: int = 0

    def __post_init__(self) -> None:
        # Normalise list inputs (e.g. from JSON) to tuples so equality and hashing are by value.
        for name in ("feature_names", "medians", "scales", "drop"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "medians", tuple(float(value) for value in self.medians))
        object.__setattr__(self, "scales", tuple(float(value) for value in self.scales))
        if not self.feature_names:
            raise ValueError("a preprocessor needs at least one feature")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError(f"duplicate feature names: {self.feature_names}")
        if not len(self.feature_names) == len(self.medians) == len(self.scales):
            raise ValueError(
                f"{len(self.feature_names)} features but {len(self.medians)} medians "
                f"and {len(self.scales)} scales"
            )
        if not all(np.isfinite(self.medians)):
            raise ValueError(f"medians must be finite: {self.medians}")
        if not all(np.isfinite(scale) and scale > 0 for scale in self.scales):
            raise ValueError(f"scales must be finite and positive: {self.scales}")

    @classmethod
    def fit(cls, frame: pd.DataFrame, drop: Iterable[str] = DEFAULT_DROP_COLUMNS) -> Preprocessor:
        """Learn medians and scales from `frame` (the training rows only) with scikit-learn."""
        drop = tuple(drop)
        feature_names = selected_features(drop)
        if not feature_names:
            raise ValueError(f"drop list {drop} removes every feature")
        matrix = feature_matrix(frame, feature_names)
        if matrix.shape[0] == 0:
            raise ValueError("cannot fit a preprocessor on zero rows")
        # keep_empty_features: an all-missing column is imputed with 0 (then scale 1.0) instead of
        # being silently removed, which would shift every later column.
        imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(matrix)
        scaler = MaxAbsScaler().fit(imputer.transform(matrix))  # scale_ is 1.0 where max |x| is 0
        return cls(
            feature_names=feature_names,
            medians=tuple(imputer.statistics_.tolist()),
            scales=tuple(scaler.scale_.tolist()),
            drop=drop,
            fitted_rows=int(matrix.shape[0]),
        )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """float32 matrix (rows of `frame`, `feature_names` order); never learns anything.

        Each output row depends only on its input row and the stored parameters, so an evaluator
        gets the same numbers alone or in any batch.
        """
        matrix = feature_matrix(frame, self.feature_names)
        medians = np.asarray(self.medians, dtype=np.float32)
        scales = np.asarray(self.scales, dtype=np.float32)
        imputed = np.where(np.isnan(matrix), medians, matrix)
        return (imputed / scales).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PREPROCESSOR_FORMAT,
            "version": PREPROCESSOR_FORMAT_VERSION,
            "steps": ["median_imputation", "max_abs_scaling"],
            "feature_names": list(self.feature_names),
            "medians": list(self.medians),
            "scales": list(self.scales),
            "drop": list(self.drop),
            "fitted_rows": self.fitted_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        if data.get("format") != PREPROCESSOR_FORMAT or data.get("version") != PREPROCESSOR_FORMAT_VERSION:
            raise ValueError(
                f"not a {PREPROCESSOR_FORMAT} version {PREPROCESSOR_FORMAT_VERSION} document: "
                f"format={data.get('format')!r}, version={data.get('version')!r}"
            )
        return cls(
            feature_names=data["feature_names"],
            medians=data["medians"],
            scales=data["scales"],
            drop=data["drop"],
            fitted_rows=int(data["fitted_rows"]),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Preprocessor:
        return cls.from_dict(json.loads(text))
