"""The code location: `dagster dev -w workspace.yaml` and `dagster asset materialize -m churn_assets.definitions`."""

from __future__ import annotations

import dagster as dg

from churn_assets.assets.catalog import athena_tables
from churn_assets.assets.ml import churn_model, model_evaluation, model_gate_passed, predictions, preprocessor
from churn_assets.assets.raw import RAW_ASSETS
from churn_assets.assets.report import REPORT_ASSETS
from churn_assets.assets.tables import instances_modeling, instances_w1
from churn_assets.alerts import churn_alerts_sensor
from churn_assets.automation import ASSET_CHECKS as FRESHNESS_CHECKS
from churn_assets.automation import JOBS, SCHEDULES, SENSORS, with_automation
from churn_assets.checks import ASSET_CHECKS
from resources import resources_for_environment


def build_definitions() -> dg.Definitions:
    # with_automation attaches the cadence (automation conditions) and freshness policies from
    # churn_assets.automation, so the asset modules stay free of scheduling concerns.
    return dg.Definitions(
        assets=with_automation([
            *RAW_ASSETS,
            instances_modeling,
            instances_w1,
            preprocessor,
            churn_model,
            model_evaluation,
            predictions,
            *REPORT_ASSETS,
            athena_tables,
        ]),
        asset_checks=[model_gate_passed, *ASSET_CHECKS, *FRESHNESS_CHECKS],
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=[*SENSORS, churn_alerts_sensor],
        resources=resources_for_environment(),
        # One process per run: Spark's JVM starts once, and steps hand values over in memory.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
