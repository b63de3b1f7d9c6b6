"""Preprocessor: statistics learnt once (by scikit-learn), applied as stored arithmetic."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MaxAbsScaler

from churn_assets.contract import DEFAULT_DROP_COLUMNS, FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS
from churn_assets.ml.preprocessing import Preprocessor, labels

SELECTED = tuple(name for name in FEATURE_COLUMNS if name not in DEFAULT_DROP_COLUMNS)


def hand_built_training_frame() -> pd.DataFrame:
    """Three rows whose statistics are known by hand (every other feature is 0)."""
    frame = pd.DataFrame(0.0, index=range(3), columns=list(INSTANCES_MODELING_COLUMNS))
    frame["instance"] = [1, 2, 3]
    frame["eval_start_date"] = "2026-09-07"
    frame["retained"] = [0, 1, 0]
    frame["number_of_projects"] = [0, 1, 4]  # median 1, max 4
    frame["number_of_issues"] = [1, 3, np.nan]  # median 2 (NaN ignored), max 3
    frame["number_of_invites"] = [3, 3, 9]  # median 3, max 9
    frame["w1_agg_active_users"] = np.nan  # all missing: median 0, scale 1
    frame["watchers_added"] = [500, 600, 700]  # dropped by the talk: must not matter
    return frame


def test_fit_learns_hand_computed_medians_and_scales():
    preprocessor = Preprocessor.fit(hand_built_training_frame())

    assert preprocessor.feature_names == SELECTED
    assert "watchers_added" not in preprocessor.feature_names
    assert preprocessor.medians[:3] == (1.0, 2.0, 3.0)
    assert preprocessor.scales[:3] == (4.0, 3.0, 9.0)
    agg = SELECTED.index("w1_agg_active_users")
    zero_only = SELECTED.index("w1_max_active_users")
    assert (preprocessor.medians[agg], preprocessor.scales[agg]) == (0.0, 1.0)
    assert (preprocessor.medians[zero_only], preprocessor.scales[zero_only]) == (0.0, 1.0)
    assert preprocessor.fitted_rows == 3


def test_transform_uses_stored_parameters_not_the_new_data():
    preprocessor = Preprocessor.fit(hand_built_training_frame())
    # A very different distribution: refitting on it would give other medians and scales.
    new = pd.DataFrame(0.0, index=range(2), columns=list(FEATURE_COLUMNS))
    new["number_of_projects"] = [np.nan, 400]
    new["number_of_issues"] = [30, np.nan]
    new["number_of_invites"] = [0, 90]
    new["w1_agg_active_users"] = [7, np.nan]
    new["w1_max_active_users"] = [5, 0]

    out = preprocessor.transform(new)

    assert out.dtype == np.float32
    assert out.shape == (2, len(SELECTED))
    column = {name: out[:, SELECTED.index(name)].tolist() for name in SELECTED}
    two_thirds = float(np.float32(2) / np.float32(3))
    assert column["number_of_projects"] == [0.25, 100.0]  # NaN -> training median 1, then / 4
    assert column["number_of_issues"] == [10.0, two_thirds]  # 30 / 3; NaN -> median 2, then / 3
    assert column["number_of_invites"] == [0.0, 10.0]  # 90 / 9
    assert column["w1_agg_active_users"] == [7.0, 0.0]  # all missing in training: median 0, scale 1
    assert column["w1_max_active_users"] == [5.0, 0.0]  # all zero in training: scale 1


def test_missing_values_are_imputed_with_the_training_median():
    preprocessor = Preprocessor.fit(hand_built_training_frame())
    row = pd.DataFrame({name: [np.nan] for name in FEATURE_COLUMNS})

    out = preprocessor.transform(row)[0]

    assert out[:3].tolist() == [0.25, float(np.float32(2) / np.float32(3)), float(np.float32(3) / np.float32(9))]
    assert out[3:].tolist() == [0.0] * (len(SELECTED) - 3)  # medians of the all-zero/all-missing columns


def test_transform_matches_scikit_learn_on_the_training_rows():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.poisson(3.0, (200, len(FEATURE_COLUMNS))).astype(float), columns=list(FEATURE_COLUMNS))
    frame = frame.mask(rng.random(frame.shape) < 0.1)
    preprocessor = Preprocessor.fit(frame)

    matrix = frame[list(SELECTED)].to_numpy(np.float32)
    imputed = SimpleImputer(strategy="median").fit_transform(matrix)
    expected = MaxAbsScaler().fit_transform(imputed)

    np.testing.assert_array_equal(preprocessor.transform(frame), expected)


def test_rows_are_transformed_independently_of_their_batch():
    training = hand_built_training_frame()
    preprocessor = Preprocessor.fit(training)
    batch = pd.concat([training, training.assign(number_of_projects=[np.nan, 9.0, 2.0])], ignore_index=True)

    alone = preprocessor.transform(batch.iloc[[4]])
    in_batch = preprocessor.transform(batch)[[4]]

    np.testing.assert_array_equal(alone, in_batch)


def test_extra_columns_and_column_order_do_not_matter():
    training = hand_built_training_frame()
    preprocessor = Preprocessor.fit(training)
    shuffled = training[list(reversed(training.columns))].assign(something_else="x")

    np.testing.assert_array_equal(preprocessor.transform(shuffled), preprocessor.transform(training))


def test_missing_feature_column_is_named():
    preprocessor = Preprocessor.fit(hand_built_training_frame())
    with pytest.raises(ValueError, match="number_of_issues"):
        preprocessor.transform(hand_built_training_frame().drop(columns="number_of_issues"))
    with pytest.raises(ValueError, match="sprint_finished"):
        Preprocessor.fit(hand_built_training_frame().drop(columns="sprint_finished"))


def test_a_dropped_column_may_be_absent():
    preprocessor = Preprocessor.fit(hand_built_training_frame())
    preprocessor.transform(hand_built_training_frame().drop(columns=["watchers_added", "retained"]))


def test_custom_drop_list_keeps_contract_order():
    preprocessor = Preprocessor.fit(hand_built_training_frame(), drop=("number_of_invites",))

    assert preprocessor.feature_names == tuple(n for n in FEATURE_COLUMNS if n != "number_of_invites")
    assert preprocessor.drop == ("number_of_invites",)


def test_json_round_trip_is_exact():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.gamma(0.7, 13.0, (101, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    preprocessor = Preprocessor.fit(frame)

    document = json.loads(preprocessor.to_json())
    restored = Preprocessor.from_json(preprocessor.to_json())

    assert document["version"] == 1
    assert document["feature_names"] == list(SELECTED)
    assert document["drop"] == list(DEFAULT_DROP_COLUMNS)
    assert document["fitted_rows"] == 101
    assert restored == preprocessor
    assert Preprocessor.from_dict(preprocessor.to_dict()) == preprocessor
    np.testing.assert_array_equal(restored.transform(frame), preprocessor.transform(frame))


def test_from_dict_rejects_other_versions_and_inconsistent_documents():
    document = Preprocessor.fit(hand_built_training_frame()).to_dict()
    with pytest.raises(ValueError, match="version"):
        Preprocessor.from_dict({**document, "version": 99})
    with pytest.raises(ValueError, match="scales"):
        Preprocessor.from_dict({**document, "scales": document["scales"][:-1]})
    with pytest.raises(ValueError, match="positive"):
        Preprocessor.from_dict({**document, "scales": [0.0] * len(document["scales"])})


def test_preprocessor_is_immutable():
    preprocessor = Preprocessor.fit(hand_built_training_frame())
    with pytest.raises(dataclasses.FrozenInstanceError):
        preprocessor.medians = ()  # type: ignore[misc]


def test_infinite_values_are_rejected():
    frame = hand_built_training_frame()
    frame.loc[0, "number_of_issues"] = np.inf
    with pytest.raises(ValueError, match="number_of_issues"):
        Preprocessor.fit(frame)


def test_labels_must_be_binary_and_present():
    frame = hand_built_training_frame()
    assert labels(frame).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="missing"):
        labels(frame.assign(retained=[0, np.nan, 1]))
    with pytest.raises(ValueError, match="0 or 1"):
        labels(frame.assign(retained=[0, 2, 1]))
    with pytest.raises(ValueError, match="retained"):
        labels(frame.drop(columns="retained"))
