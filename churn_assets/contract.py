"""The data contract (../shared/CONTRACT.md) as constants: table layouts, columns, event vocabulary.

Everything that names a raw column, an event type or an output column imports it from here, so a
contract change is one edit.
"""

from __future__ import annotations

# Raw tables, relative to the storage root. Each is Hive-partitioned by week: `week=YYYY-MM-DD`.
RAW_INSTANCES = "raw/instances"
RAW_USAGE_EVENTS = "raw/usage_events"
RAW_CONVERSIONS = "raw/conversions"
TRUTH = "_truth/conversion_probability"  # simulator only: each evaluator's true probability

# Raw column -> Spark SQL type, in contract order.
RAW_SCHEMAS: dict[str, dict[str, str]] = {
    RAW_INSTANCES: {
        "instance": "bigint",
        "eval_start_date": "date",
        "product": "string",
        "region": "string",
    },
    RAW_USAGE_EVENTS: {
        "instance": "bigint",
        "user_id": "bigint",
        "event_date": "date",
        "event_type": "string",
        "platform": "string",
        "event_count": "int",
    },
    RAW_CONVERSIONS: {
        "instance": "bigint",
        "converted_date": "date",
    },
}

# The column whose date decides a row's week partition.
PARTITION_DATE_COLUMN = {
    RAW_INSTANCES: "eval_start_date",
    RAW_USAGE_EVENTS: "event_date",
    RAW_CONVERSIONS: "converted_date",
}

# Event type -> the feature that sums its event_count over week 1.
EVENT_TYPE_FEATURES: dict[str, str] = {
    "project_created": "number_of_projects",
    "issue_created": "number_of_issues",
    "user_invited": "number_of_invites",
    "watcher_added": "watchers_added",
    "issue_updated": "issues_updated",
    "issue_commented": "issues_commented",
    "issue_assigned": "issues_assigned",
    "user_mentioned": "at_mentions",
    "issue_viewed": "issues_viewed",
    "issue_completed": "issues_completed",
    "sprint_started": "sprint_started",
    "sprint_finished": "sprint_finished",
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_TYPE_FEATURES)
PLATFORMS: tuple[str, ...] = ("web", "mobile")

W1_DAYS = 7
DEFAULT_LABEL_WINDOW_DAYS = 30

# Output tables: the contract's column order, exactly.
FEATURE_COLUMNS: tuple[str, ...] = (
    "number_of_projects",
    "number_of_issues",
    "number_of_invites",
    "w1_active_users",
    "w1_agg_active_users",
    "w1_max_active_users",
    "watchers_added",
    "issues_updated",
    "issues_commented",
    "issues_assigned",
    "at_mentions",
    "issues_viewed",
    "issues_completed",
    "mobile_usage",
    "sprint_started",
    "sprint_finished",
)
ID_COLUMNS: tuple[str, ...] = ("instance", "eval_start_date")
LABEL_COLUMN = "retained"
INSTANCES_MODELING_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, LABEL_COLUMN, *FEATURE_COLUMNS)
INSTANCES_W1_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, *FEATURE_COLUMNS)
PREDICTION_COLUMNS: tuple[str, ...] = (
    *INSTANCES_W1_COLUMNS,
    "prediction_retained",
    "retain_probability",
    "model_version",
)

# Output folders, relative to the storage root (the talk's S3 layout `models/{job}/v0`).
INSTANCES_MODELING_DIR = "models/instances_modeling/v0"
INSTANCES_W1_DIR = "models/instances_w1/v0"
# The platform's own (not in the contract): instances_modeling's week-1 usage day by day
# (sql/w1_daily.sql), written beside the table for the behaviour report.
W1_DAILY_USAGE_DIR = "models/w1_daily_usage/v0"
PREDICTIONS_DIR = "models/predictions/v0"
PREPROCESSOR_DIR = "models/preprocessor/v0"
CHURN_MODEL_DIR = "models/churn_model/v0"
EVALUATION_DIR = "models/evaluation/v0"

# The talk's drop list: identifiers, the label, and two features it found too sparse.
DEFAULT_DROP_COLUMNS: tuple[str, ...] = (
    "instance",
    "eval_start_date",
    "retained",
    "watchers_added",
    "w1_active_users",
)
