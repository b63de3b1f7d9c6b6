"""The command line: `churn simulate` and Dagster's own `dagster asset materialize`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from churn_assets.contract import INSTANCES_MODELING_COLUMNS, INSTANCES_MODELING_DIR
from tests.test_feature_tables import WEEK_A, WEEK_B, build_raw

VENV_BIN = Path(sys.executable).parent


def test_definitions_load_with_every_asset():
    from churn_assets.definitions import defs

    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {
        "raw_instances",
        "raw_usage_events",
        "raw_conversions",
        "instances_modeling",
        "instances_w1",
        "preprocessor",
        "churn_model",
        "model_evaluation",
        "predictions",
    } <= keys


def test_unknown_environment_is_refused(monkeypatch):
    from resources import resources_for_environment

    monkeypatch.setenv("CHURN_ENV", "staging")
    with pytest.raises(ValueError, match="CHURN_ENV='staging' is not one of local, test, prod"):
        resources_for_environment()


def test_churn_simulate_command_writes_the_raw_tables(tmp_path):
    completed = subprocess.run(
        [str(VENV_BIN / "churn"), "simulate", "--root", str(tmp_path), "--instances", "300", "--weeks", "2",
         "--as-of", "2026-12-03", "--seed", "3"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    for table in ("instances", "usage_events", "conversions"):
        assert any((tmp_path / "raw" / table).glob("week=*/*.parquet"))


@pytest.mark.slow
def test_dagster_cli_materializes_a_partition_range_of_foreign_data(tmp_path):
    """Data this project did not write (hand-built), through Dagster's own CLI, as in the README."""
    build_raw(tmp_path)
    env = {**os.environ, "CHURN_ENV": "local", "CHURN_DATA_ROOT": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dh")}
    (tmp_path / "dh").mkdir()
    completed = subprocess.run(
        [str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "churn_assets.definitions",
         "--select", "instances_modeling", "--partition-range", f"{WEEK_A}...{WEEK_B}"],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).parent.parent,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for week, rows in ((WEEK_A, 3), (WEEK_B, 1)):
        frame = pd.read_csv(tmp_path / INSTANCES_MODELING_DIR / f"{week}.csv")
        assert list(frame.columns) == list(INSTANCES_MODELING_COLUMNS) and len(frame) == rows
    assert not (Path(__file__).parent.parent / "metastore_db").exists()
