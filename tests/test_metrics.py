"""Metric computations checked against cases worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from churn_assets.ml.metrics import (
    TALK_REPORTED_RESULTS,
    classification_summary,
    lift_table,
    markdown_talk_table,
    predict_labels,
    probability_metrics,
)

Y = [0, 1, 1, 0]
P = [0.1, 0.8, 0.6, 0.3]


def test_classification_summary_by_hand():
    y_true = [1, 1, 1, 0, 0, 0, 0, 1]
    y_pred = [1, 0, 1, 0, 1, 0, 0, 0]  # TP 2, FN 2, FP 1, TN 3

    summary = classification_summary(y_true, y_pred)

    assert summary["confusion_matrix"] == [[3, 1], [2, 2]]
    assert summary["accuracy"] == pytest.approx(5 / 8)
    assert summary["precision"] == pytest.approx(2 / 3)
    assert summary["recall"] == pytest.approx(1 / 2)
    assert summary["f1"] == pytest.approx(4 / 7)
    assert summary["rows"] == 8
    assert "precision" in summary["classification_report"] and "support" in summary["classification_report"]
    json.dumps(summary)


def test_classification_summary_of_a_model_that_never_predicts_positive():
    summary = classification_summary([0, 1, 0, 0], [0, 0, 0, 0])

    assert summary["precision"] == 0.0 and summary["recall"] == 0.0
    assert summary["confusion_matrix"] == [[3, 0], [1, 0]]


def test_probability_metrics_by_hand():
    metrics = probability_metrics(Y, P, threshold=0.7)

    assert metrics["roc_auc"] == 1.0  # every positive outranks every negative
    assert metrics["pr_auc"] == 1.0
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.09) / 4)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.7)) / 4)
    # At 0.7 only the 0.8 row is predicted positive: precision 1, recall 1/2.
    assert (metrics["precision"], metrics["recall"]) == (1.0, 0.5)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["confusion_matrix"] == [[2, 0], [1, 1]]
    assert metrics["predicted_positive_rate"] == 0.25
    assert metrics["positive_rate"] == 0.5
    assert metrics["baseline"]["accuracy"] == 0.5
    assert metrics["baseline"]["brier"] == 0.25
    assert metrics["baseline"]["pr_auc"] == 0.5
    assert metrics["baseline"]["log_loss"] == pytest.approx(math.log(2))


def test_probability_metrics_of_a_reversed_ranking():
    metrics = probability_metrics(Y, [1 - p for p in P], threshold=0.5)
    assert metrics["roc_auc"] == 0.0
    assert metrics["accuracy"] == 0.0


def test_results_are_plain_python_for_json():
    metrics = probability_metrics(np.array(Y), np.array(P, dtype=np.float32), threshold=0.5)

    text = json.dumps(metrics, allow_nan=False)

    assert json.loads(text) == metrics
    assert type(metrics["roc_auc"]) is float and type(metrics["rows"]) is int
    assert type(metrics["confusion_matrix"][0][0]) is int


def test_one_class_input_is_refused_clearly():
    with pytest.raises(ValueError, match="both classes"):
        probability_metrics([1, 1, 1], [0.2, 0.5, 0.9], threshold=0.5)
    with pytest.raises(ValueError, match="positive"):
        lift_table([0, 0, 0], [0.2, 0.5, 0.9], n_bins=3)


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="0 or 1"):
        probability_metrics([0, 2], [0.1, 0.2], threshold=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        probability_metrics([0, 1], [0.1, 1.2], threshold=0.5)
    with pytest.raises(ValueError, match="2 labels but 3"):
        probability_metrics([0, 1], [0.1, 0.2, 0.3], threshold=0.5)


def test_predict_labels_includes_the_threshold():
    assert predict_labels([0.2, 0.5, 0.7], 0.5).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="threshold"):
        predict_labels([0.2], 1.5)


def test_lift_table_on_twenty_rows_by_hand():
    # Scores 0.95, 0.90, ..., 0.00; deciles are pairs. Positives (5 of 20, base rate 0.25) at the
    # ranks 1, 2, 3, 6 and 9.
    ranked_scores = [round(0.95 - 0.05 * i, 2) for i in range(20)]
    ranked_labels = [1, 1, 1, 0, 0, 1, 0, 0, 1, 0] + [0] * 10
    order = np.random.default_rng(3).permutation(20)  # the table must not depend on input order
    scores = np.array(ranked_scores)[order]
    y = np.array(ranked_labels)[order]

    table = lift_table(y, scores, n_bins=10)

    assert [row["rows"] for row in table] == [2] * 10
    assert [row["positives"] for row in table] == [2, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert [row["rate"] for row in table] == [1.0, 0.5, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert [row["lift"] for row in table] == [4.0, 2.0, 2.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert [row["cumulative_positive_share"] for row in table] == [0.4, 0.6, 0.8, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert (table[0]["max_probability"], table[0]["min_probability"]) == (0.95, 0.9)
    assert [row["bin"] for row in table] == list(range(1, 11))
    json.dumps(table, allow_nan=False)


def test_lift_table_uneven_bins_put_extra_rows_first():
    table = lift_table([1, 0, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5], n_bins=2)
    assert [row["rows"] for row in table] == [3, 2]
    assert [row["positives"] for row in table] == [1, 1]
    with pytest.raises(ValueError, match="n_bins"):
        lift_table([1, 0], [0.9, 0.1], n_bins=3)


def test_markdown_table_reproduces_the_talks_numbers():
    table = markdown_talk_table(TALK_REPORTED_RESULTS)
    lines = table.strip().splitlines()

    assert lines[0].startswith("| model | accuracy | precision | recall |")
    assert len(lines) == 2 + 4
    assert "| xgboost | 0.88 | 0.80 | 0.64 | [[13814, 721], [1636, 2870]] |" in lines
    assert "| logistic_regression | 0.86 | 0.90 | 0.47 | [[14296, 239], [2405, 2101]] |" in lines


def test_markdown_table_takes_classification_summaries():
    summary = classification_summary([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0, 0])
    table = markdown_talk_table({"toy": summary}, digits=3)
    assert "| toy | 0.625 | 0.667 | 0.500 | [[3, 1], [2, 2]] |" in table
