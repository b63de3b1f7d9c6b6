"""Alerts: failed asset checks and freshness failures, logged, written and posted once each.

A failed non-blocking check does not fail its run, so a run-failure sensor never sees it; a
freshness policy failing is not a run at all. `churn_alerts_sensor` (running by default) reads
both from the instance on every tick:

- asset check evaluations that FAILED (any severity, blocking or not), from the asset-check
  execution records of every check in the code location (the index of the event log: also works on
  the default SQLite storage, where cross-run event queries for checks need run-sharded cursors);
- FRESHNESS_STATE_CHANGE events to FAIL, which the freshness daemon of `dagster dev` records when a
  `FreshnessPolicy` fails (`instance.get_freshness_state_records` gives only the latest state).

Each alert is logged, appended as one JSON line to `alerts/alerts.jsonl` under the storage root,
and POSTed as a Slack-compatible payload when CHURN_ALERT_WEBHOOK is set (the `alert_webhook` resource). A
webhook failure is logged and recorded in the JSON line, never raised. The sensor cursor keeps the
keys of the alerts sent (asset, check, partition, run id or storage id), so no failure is alerted
twice; on its first tick the sensor looks back INITIAL_LOOKBACK only, not over the whole history.

The pure parts (records, payloads, the dedupe state) take plain values and are tested alone.
"""
# No `from __future__ import annotations`: Dagster reads the sensor's resource annotation.

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from resources.alert_webhook import WEBHOOK_ENV, AlertWebhook
from resources.storage import StorageRoot

ALERTS_FILE = "alerts/alerts.jsonl"
WEBHOOK_TIMEOUT_SECONDS = 5.0
INITIAL_LOOKBACK = timedelta(hours=24)  # first tick: alert on failures of the last day only
RETENTION = timedelta(days=8)  # dedupe keys kept this long; older failures are never re-alerted
CHECK_RECORDS_PER_TICK = 100  # newest failed evaluations read per check and tick
FRESHNESS_EVENTS_PER_TICK = 500

logger = logging.getLogger(__name__)


# --- Pure parts: records, payloads, dedupe -------------------------------------------------------


def check_dedupe_key(asset: str, check: str, partition: str | None, run_id: str | None, storage_id: int) -> str:
    """One failed evaluation: a run evaluates a check on a partition once; runless ones by storage id."""
    origin = f"run:{run_id}" if run_id else f"id:{storage_id}"
    return f"check|{asset}|{check}|{partition or '-'}|{origin}"


def freshness_dedupe_key(asset: str, storage_id: int) -> str:
    return f"freshness|{asset}|id:{storage_id}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


def check_alert(
    *,
    asset: str,
    check: str,
    partition: str | None,
    severity: str,
    blocking: bool,
    description: str | None,
    metadata: dict[str, Any],
    run_id: str | None,
    storage_id: int,
    occurred_at: float,
) -> dict[str, Any]:
    """The alert record of one failed asset check evaluation (JSON-safe values only)."""
    where = f"{asset} / {check}" + (f" (partition {partition})" if partition else "")
    return {
        "alert_id": check_dedupe_key(asset, check, partition, run_id, storage_id),
        "kind": "asset_check_failed",
        "asset": asset,
        "check": check,
        "partition": partition,
        "severity": severity,
        "blocking": blocking,
        "summary": f"Asset check failed: {where}, severity {severity}{', blocking' if blocking else ''}",
        "description": description or "",
        "metadata": metadata,
        "run_id": run_id or None,
        "storage_id": storage_id,
        "occurred_at": _iso(occurred_at),
    }


def freshness_alert(
    *,
    asset: str,
    new_state: str,
    previous_state: str,
    policy: str | None,
    storage_id: int,
    occurred_at: float,
) -> dict[str, Any]:
    """The alert record of one freshness state change to FAIL (or WARN)."""
    severity = "ERROR" if new_state == "FAIL" else "WARN"
    return {
        "alert_id": freshness_dedupe_key(asset, storage_id),
        "kind": "freshness_failed" if new_state == "FAIL" else "freshness_warned",
        "asset": asset,
        "check": None,
        "partition": None,
        "severity": severity,
        "blocking": False,
        "summary": f"Freshness {new_state}: {asset} (was {previous_state})",
        "description": f"{asset} is older than its freshness policy allows" + (f" ({policy})" if policy else ""),
        "metadata": {"policy": policy} if policy else {},
        "run_id": None,
        "storage_id": storage_id,
        "occurred_at": _iso(occurred_at),
    }


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook payload: `text` (notifications, fallbacks) and Block Kit `blocks`."""
    icon = ":red_circle:" if alert["severity"] == "ERROR" else ":warning:"
    details = [f"*{key}*: `{value}`" for key, value in alert["metadata"].items()][:10]
    body = "\n".join([alert["description"], *details]).strip() or alert["summary"]
    context = [
        f"asset `{alert['asset']}`",
        *([f"check `{alert['check']}`"] if alert["check"] else []),
        *([f"partition `{alert['partition']}`"] if alert["partition"] else []),
        *([f"run `{alert['run_id']}`"] if alert["run_id"] else []),
        f"at {alert['occurred_at']}",
    ]
    return {
        "text": _truncate(f"{icon} {alert['summary']}: {alert['description']}", 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _truncate(alert["summary"], 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(body, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(" · ".join(context), 3000)}]},
        ],
    }


@dataclass
class AlertState:
    """What the sensor cursor remembers: the alerts sent, and where the freshness events end."""

    since: float  # failures before this time are never alerted (first tick, and pruned keys)
    sent: dict[str, float] = field(default_factory=dict)  # dedupe key -> time of the failure
    freshness_after: int | None = None  # storage id of the last freshness event read

    @classmethod
    def from_cursor(
        cls, cursor: str | None, now: float, initial_lookback: timedelta = INITIAL_LOOKBACK
    ) -> "AlertState":
        if not cursor:
            return cls(since=now - initial_lookback.total_seconds())
        data = json.loads(cursor)
        return cls(
            since=float(data["since"]), sent=dict(data.get("sent", {})), freshness_after=data.get("freshness_after")
        )

    def to_cursor(self) -> str:
        return json.dumps(
            {"since": self.since, "sent": self.sent, "freshness_after": self.freshness_after}, sort_keys=True
        )

    def is_new(self, key: str, occurred_at: float) -> bool:
        return occurred_at >= self.since and key not in self.sent

    def mark_sent(self, key: str, occurred_at: float) -> None:
        self.sent[key] = occurred_at

    def prune(self, now: float, retention: timedelta = RETENTION) -> None:
        """Forget keys older than the retention; `since` moves with it, so they stay unsent."""
        cutoff = now - retention.total_seconds()
        self.since = max(self.since, cutoff)
        self.sent = {key: at for key, at in self.sent.items() if at >= cutoff}


def new_alerts(candidates: list[tuple[dict[str, Any], float]], state: AlertState) -> list[dict[str, Any]]:
    """The candidate alerts (record, failure time) not sent yet, oldest first, marked as sent."""
    fresh = []
    for alert, occurred_at in sorted(candidates, key=lambda item: item[1]):
        if state.is_new(alert["alert_id"], occurred_at):
            state.mark_sent(alert["alert_id"], occurred_at)
            fresh.append(alert)
    return fresh


def post_json(url: str, payload: dict[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> str | None:
    """POST `payload` as JSON; None when the server answered 2xx, else the error (never raised)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return f"{WEBHOOK_ENV} must be an http(s) URL"
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError
        return f"{type(exc).__name__}: {exc}"
    return None if 200 <= status < 300 else f"HTTP {status}"


# --- Reading failures from the instance ---------------------------------------------------------


def _json_safe(value: Any) -> Any:
    value = getattr(value, "value", value)  # MetadataValue -> its value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def failed_check_candidates(
    instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], since: float
) -> list[tuple[dict[str, Any], float]]:
    """Alert records of failed check evaluations since `since`, newest CHECK_RECORDS_PER_TICK per check."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    candidates = []
    storage = instance.event_log_storage
    for check_key in sorted(check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        records = storage.get_asset_check_execution_history(
            check_key, limit=CHECK_RECORDS_PER_TICK, status={AssetCheckExecutionRecordStatus.FAILED}
        )
        for record in records:
            entry = record.event
            evaluation = entry.dagster_event.event_specific_data if entry and entry.dagster_event else None
            occurred_at = entry.timestamp if entry else record.create_timestamp
            if occurred_at < since:
                break  # newest first: the rest is older
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            alert = check_alert(
                asset=check_key.asset_key.to_user_string(),
                check=check_key.name,
                partition=record.partition or evaluation.partition,
                severity=evaluation.severity.value,
                blocking=bool(evaluation.blocking),
                description=evaluation.description,
                metadata={key: _json_safe(value) for key, value in evaluation.metadata.items()},
                run_id=record.run_id,
                storage_id=record.id,
                occurred_at=occurred_at,
            )
            candidates.append((alert, occurred_at))
    return candidates


def freshness_candidates(
    instance: dg.DagsterInstance,
    state: AlertState,
    policies: dict[dg.AssetKey, str],
    states: frozenset[str] = frozenset({"FAIL"}),
) -> tuple[list[tuple[dict[str, Any], float]], int | None]:
    """Alert records of freshness state changes into `states`, and the storage id read up to."""
    if state.freshness_after is None:
        records_filter = dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE,
            after_timestamp=state.since,
        )
    else:
        records_filter = dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE,
            after_cursor=state.freshness_after,
        )
    # Freshness events live in the index shard (asset events), so a storage-id cursor works on
    # every event log storage, SQLite included.
    records = instance.event_log_storage.get_event_records(
        records_filter, limit=FRESHNESS_EVENTS_PER_TICK, ascending=True
    )
    candidates, last = [], state.freshness_after
    for record in records:
        last = record.storage_id
        event = record.event_log_entry.dagster_event
        change = event.event_specific_data if event else None
        new_state = getattr(getattr(change, "new_state", None), "value", None)
        if new_state not in states:
            continue
        alert = freshness_alert(
            asset=change.key.to_user_string(),
            new_state=new_state,
            previous_state=change.previous_state.value,
            policy=policies.get(change.key),
            storage_id=record.storage_id,
            occurred_at=change.state_change_timestamp,
        )
        candidates.append((alert, change.state_change_timestamp))
    return candidates, last


def _window(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 72 else f"{hours / 24:g} days"


def describe_policy(policy: Any) -> str | None:
    """A FreshnessPolicy in words ("fails when not updated for 26 hours")."""
    if policy is None:
        return None
    fail_window = getattr(policy, "fail_window", None)
    if fail_window is not None:
        window = fail_window.to_timedelta() if hasattr(fail_window, "to_timedelta") else fail_window
        return f"fails when not updated for {_window(window)}"
    deadline = getattr(policy, "deadline_cron", None)
    return f"fails when not updated by {deadline}" if deadline else type(policy).__name__


def deliver(alert: dict[str, Any], storage: StorageRoot, webhook: str | None, log: Any) -> dict[str, Any]:
    """Log, post (when configured) and append one alert; never raises for a delivery problem."""
    log.warning(f"ALERT {alert['summary']}: {alert['description']}")
    if webhook:
        error = post_json(webhook, slack_payload(alert))
        delivery = "sent" if error is None else f"failed: {error}"
        if error:
            log.error(f"alert {alert['alert_id']}: webhook post failed: {error}")
    else:
        delivery = f"not configured ({WEBHOOK_ENV} unset)"
    line = {**alert, "webhook": delivery, "alerted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        storage.append_line(ALERTS_FILE, json.dumps(line, sort_keys=True, default=str))
    except OSError as exc:
        log.error(f"alert {alert['alert_id']}: could not append to {ALERTS_FILE}: {exc}")
    return line


@dg.sensor(
    name="churn_alerts_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Alerts on failed asset checks (any severity) and freshness failures: logged, appended to "
        f"{ALERTS_FILE} under the storage root, POSTed to ${WEBHOOK_ENV} when set. Once per failure."
    ),
)
def churn_alerts_sensor(
    context: dg.SensorEvaluationContext, storage: StorageRoot, alert_webhook: AlertWebhook
) -> dg.SensorResult:
    now = datetime.now(timezone.utc).timestamp()
    state = AlertState.from_cursor(context.cursor, now)
    try:
        repository = context.repository_def  # set by the daemon; tests pass `definitions=`
    except dg.DagsterInvariantViolationError:
        repository = None
    if repository is None:
        return dg.SensorResult(skip_reason="no repository: cannot list the asset checks", cursor=state.to_cursor())
    asset_graph = repository.asset_graph
    check_keys = list(asset_graph.asset_check_keys)
    policies = {
        key: describe_policy(asset_graph.get(key).freshness_policy)
        for key in asset_graph.get_all_asset_keys()
        if asset_graph.get(key).freshness_policy is not None
    }
    candidates = failed_check_candidates(context.instance, check_keys, state.since)
    freshness, state.freshness_after = freshness_candidates(context.instance, state, policies)
    alerts = new_alerts(candidates + freshness, state)
    webhook = alert_webhook.target
    for alert in alerts:
        deliver(alert, storage, webhook, context.log)
    state.prune(now)
    return dg.SensorResult(
        skip_reason=f"{len(alerts)} alert(s) sent" if alerts else "no new failures",
        cursor=state.to_cursor(),
    )
