"""The code location: `dagster dev -w workspace.yaml` and `dagster asset materialize -m churn_assets.definitions`."""

from __future__ import annotations

import dagster as dg

from churn_assets.assets.ml import churn_model, model_evaluation, model_gate_passed, predictions, preprocessor
from churn_assets.assets.raw import RAW_ASSETS
from churn_assets.assets.tables import instances_modeling, instances_w1
from resources import resources_for_environment


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            *RAW_ASSETS,
            instances_modeling,
            instances_w1,
            preprocessor,
            churn_model,
            model_evaluation,
            predictions,
        ],
        asset_checks=[model_gate_passed],
        resources=resources_for_environment(),
        # One process per run: Spark's JVM starts once, and steps hand values over in memory.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
