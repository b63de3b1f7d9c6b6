"""Where alerts are POSTed: a Slack-compatible incoming-webhook URL, or nowhere.

The URL is a secret (whoever holds it can post to the channel), so it is bound from the
environment as a `dg.EnvVar` (resources/__init__.py): Dagster keeps the variable's name in its
config and UI, never the URL.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg

WEBHOOK_ENV = "CHURN_ALERT_WEBHOOK"


class AlertWebhook(dg.ConfigurableResource):
    url: Optional[str] = None  # None or empty: alerts are logged and recorded, not posted

    @property
    def target(self) -> str | None:
        return (self.url or "").strip() or None


def alert_webhook_from_environment() -> AlertWebhook:
    import os

    return AlertWebhook(url=dg.EnvVar(WEBHOOK_ENV)) if os.environ.get(WEBHOOK_ENV, "").strip() else AlertWebhook()
