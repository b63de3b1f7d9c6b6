"""Dagster resources, bound per environment in one place: `resources_for_environment`.

CHURN_ENV selects the environment (read when the definitions load, not at import):
- `local` (default): storage root ./data (or CHURN_DATA_ROOT), Spark in local mode;
- `test`: the same, for the test suite, with CHURN_DATA_ROOT pointing at a temporary folder;
- `prod`: CHURN_DATA_ROOT is required; Spark on CHURN_SPARK_MASTER or CHURN_SPARK_REMOTE.
"""

from __future__ import annotations

import os

import dagster as dg

from resources.spark import spark_config, spark_resource
from resources.storage import StorageRoot

ENVIRONMENTS = ("local", "test", "prod")
DEFAULT_LOCAL_ROOT = "data"


def current_environment() -> str:
    env = os.environ.get("CHURN_ENV", "local").strip().lower() or "local"
    if env not in ENVIRONMENTS:
        raise ValueError(f"CHURN_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env


def resources_for_environment(env: str | None = None) -> dict[str, object]:
    env = env or current_environment()
    if env == "prod":
        if not os.environ.get("CHURN_DATA_ROOT"):
            raise ValueError("CHURN_ENV=prod needs CHURN_DATA_ROOT (a folder or s3://bucket/prefix)")
        storage = StorageRoot(root=dg.EnvVar("CHURN_DATA_ROOT"))
    else:
        storage = StorageRoot(root=os.environ.get("CHURN_DATA_ROOT", DEFAULT_LOCAL_ROOT))
    return {
        "storage": storage,
        "spark": spark_resource(
            master=os.environ.get("CHURN_SPARK_MASTER") or None,
            remote=os.environ.get("CHURN_SPARK_REMOTE") or None,
        ),
        # Assets persist what matters under the storage root themselves; between steps of one
        # in-process run values may live in memory.
        "io_manager": dg.InMemoryIOManager(),
    }


__all__ = ["StorageRoot", "current_environment", "resources_for_environment", "spark_config", "spark_resource"]
