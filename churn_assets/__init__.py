"""Churn Prediction Unleashed: the Dagster code location and its pure logic."""

import warnings

# backfill_policy (single-run backfills: one Spark job for a range of weeks) and
# allow_nonexistent_upstream_partitions (the 13-week window at the first weeks) are marked beta in
# Dagster 1.13, partitioned asset checks "preview"; we rely on them on purpose. Deprecation
# warnings stay visible.
warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
