"""XGBoost model: talk parameters, pickle-free persistence, threshold, card, training recipe."""

from __future__ import annotations

import json
import pickle
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import xgboost

from churn_assets.contract import FEATURE_COLUMNS, INSTANCES_MODELING_COLUMNS
from churn_assets.ml.model import (
    TALK_XGB_PARAMS,
    ModelCard,
    choose_threshold,
    cohort_week_keys,
    load_model,
    model_from_bytes,
    predict_proba,
    save_model,
    train_churn_model,
    train_xgboost,
)
from churn_assets.ml.preprocessing import Preprocessor

FAST_PARAMS = {**TALK_XGB_PARAMS, "n_estimators": 20, "n_jobs": 1}


def labelled_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Evaluators over three cohort weeks whose conversion rises with issues and active users."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.poisson(4.0, (rows, len(FEATURE_COLUMNS))).astype(float), columns=list(FEATURE_COLUMNS))
    logit = 0.4 * frame["number_of_issues"] + 0.3 * frame["w1_agg_active_users"] - 3.0
    frame["retained"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    frame["instance"] = np.arange(rows)
    first_monday = date(2026, 9, 7)
    frame["eval_start_date"] = [str(first_monday + timedelta(days=int(d))) for d in rng.integers(0, 21, rows)]
    return frame[list(INSTANCES_MODELING_COLUMNS)]


@pytest.fixture(scope="module")
def trained():
    frame = labelled_frame()
    preprocessor = Preprocessor.fit(frame)
    X = preprocessor.transform(frame)
    return preprocessor, X, train_xgboost(X, frame["retained"], FAST_PARAMS, preprocessor.feature_names)


def test_talk_parameters_are_the_talks():
    assert dict(TALK_XGB_PARAMS) == {
        "learning_rate": 0.1, "n_estimators": 200, "max_depth": 3, "min_child_weight": 6, "gamma": 0,
        "subsample": 0.5, "colsample_bytree": 1.0, "colsample_bylevel": 1.0, "objective": "binary:logistic",
        "n_jobs": -1, "scale_pos_weight": 1, "random_state": 27,
    }
    with pytest.raises(TypeError):
        TALK_XGB_PARAMS["max_depth"] = 6  # type: ignore[index]
    assert xgboost.XGBClassifier(**TALK_XGB_PARAMS).get_params()["min_child_weight"] == 6


@pytest.mark.parametrize("suffix", [".ubj", ".json"])
def test_save_load_round_trip_gives_identical_probabilities(tmp_path, trained, suffix):
    preprocessor, X, classifier = trained
    path = save_model(classifier, tmp_path / f"model{suffix}")

    loaded = load_model(path)

    assert isinstance(loaded, xgboost.Booster)
    fresh = predict_proba(classifier, X)
    np.testing.assert_array_equal(predict_proba(loaded, X, preprocessor.feature_names), fresh)
    np.testing.assert_array_equal(fresh, classifier.predict_proba(X)[:, 1])
    assert loaded.feature_names == list(preprocessor.feature_names)


def test_model_file_is_not_a_pickle_and_pickles_are_refused(tmp_path, trained):
    _, _, classifier = trained
    raw = save_model(classifier, tmp_path / "model.ubj").read_bytes()
    assert raw[:1] == b"{"  # UBJSON object, not a pickle opcode stream (b"\x80...")
    with pytest.raises(Exception):
        pickle.loads(raw)

    disguised = tmp_path / "evil.ubj"
    disguised.write_bytes(pickle.dumps(classifier))
    with pytest.raises(ValueError, match="refusing"):
        load_model(disguised)
    with pytest.raises(ValueError, match="refusing"):
        model_from_bytes(pickle.dumps({"not": "a model"}, protocol=0))


def test_save_model_refuses_other_suffixes(tmp_path, trained):
    with pytest.raises(ValueError, match=".ubj or .json"):
        save_model(trained[2], tmp_path / "model.pkl")


def test_probabilities_do_not_depend_on_the_batch(trained):
    _, X, classifier = trained
    batch = predict_proba(classifier, X)
    alone = np.array([predict_proba(classifier, X[[i]])[0] for i in range(0, len(X), 37)])
    others = predict_proba(classifier, X[::-1])[::-1]

    np.testing.assert_array_equal(alone, batch[::37])
    np.testing.assert_array_equal(others, batch)
    assert batch.dtype == np.float64 and 0 <= batch.min() and batch.max() <= 1


def test_predict_proba_checks_the_features(trained):
    preprocessor, X, classifier = trained
    with pytest.raises(ValueError, match="feature columns"):
        predict_proba(classifier, X[:, :-1])
    with pytest.raises(ValueError, match="do not match"):
        predict_proba(classifier, X, tuple(reversed(preprocessor.feature_names)))
    assert predict_proba(classifier, X[:0]).shape == (0,)


def test_training_needs_both_classes():
    with pytest.raises(ValueError, match="one class"):
        train_xgboost(np.zeros((5, 2), np.float32), [1] * 5, FAST_PARAMS)


def test_choose_threshold_maximises_f1_by_hand():
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    # F1 at each cut: 0.1 -> 2/3, 0.35 -> 0.8 (TP 2, FP 1), 0.4 -> 1/2, 0.8 -> 2/3.
    assert choose_threshold(y, p) == 0.35
    # F0.5 favours precision: 0.35 -> 0.714, 0.8 -> 0.833.
    assert choose_threshold(y, p, beta=0.5) == 0.8
    with pytest.raises(ValueError, match="positive"):
        choose_threshold([0, 0], [0.1, 0.2])


def test_cohort_weeks_are_mondays():
    frame = pd.DataFrame({"eval_start_date": ["2026-09-07", "2026-09-13", "2026-09-14", "2026-09-06"]})
    assert cohort_week_keys(frame).tolist() == ["2026-09-07", "2026-09-07", "2026-09-14", "2026-08-31"]
    with pytest.raises(ValueError, match="eval_start_date"):
        cohort_week_keys(pd.DataFrame({"eval_start_date": ["2026-09-07", None]}))


def test_model_card_json_round_trip():
    card = ModelCard(
        model_version="2026-10-05",
        training_weeks=("2026-09-14", "2026-09-07"),
        rows=10,
        positive_rate=0.3,
        feature_names=("a", "b"),
        params=dict(TALK_XGB_PARAMS),
        decision_threshold=0.41,
        threshold_rule="max_f1_out_of_fold",
        metrics={"max_f1_out_of_fold": {"roc_auc": 0.8, "confusion_matrix": [[1, 2], [3, 4]]}},
    )
    document = json.loads(card.to_json())

    assert document["training_weeks"] == {"first": "2026-09-07", "last": "2026-09-14", "weeks": ["2026-09-07", "2026-09-14"]}
    assert set(document["library_versions"]) == {"xgboost", "sklearn", "numpy", "pandas", "python"}
    assert document["library_versions"]["xgboost"] == xgboost.__version__
    assert document["decision_threshold"] == 0.41
    assert ModelCard.from_json(card.to_json()) == card
    with pytest.raises(ValueError, match="version"):
        ModelCard.from_dict({**document, "version": 2})


def test_train_churn_model_records_what_it_did():
    frame = labelled_frame()

    model = train_churn_model(frame, "v-test", FAST_PARAMS, threshold_folds=3)

    card = model.card
    assert card.training_weeks == ("2026-09-07", "2026-09-14", "2026-09-21")
    assert card.rows == 400 and card.positive_rate == pytest.approx(frame["retained"].mean())
    assert card.feature_names == model.preprocessor.feature_names
    assert card.decision_threshold == model.threshold
    assert card.threshold_rule == "max_f1_out_of_fold"
    assert card.metrics["max_f1_out_of_fold"]["threshold"] == model.threshold
    assert card.params["n_estimators"] == 20
    json.dumps(card.to_dict(), allow_nan=False)
    # The threshold was picked on out-of-fold probabilities: in-sample picks from other numbers.
    in_sample = train_churn_model(frame, "v-test", FAST_PARAMS, threshold_folds=None)
    assert in_sample.card.threshold_rule == "max_f1_in_sample"
    np.testing.assert_array_equal(in_sample.predict_proba(frame), model.predict_proba(frame))
    assert in_sample.threshold != model.threshold
