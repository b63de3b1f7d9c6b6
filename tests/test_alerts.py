"""Alerts: the pure parts alone, then the sensor against an instance and a webhook on loopback."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.events import DagsterEvent
from dagster._core.utils import make_new_run_id

from churn_assets import alerts
from churn_assets.alerts import AlertState, check_alert, freshness_alert, new_alerts, slack_payload
from resources.alert_webhook import AlertWebhook, alert_webhook_from_environment
from resources.storage import StorageRoot

# --- pure parts ------------------------------------------------------------------------------------


def _check_alert(**overrides):
    values = dict(
        asset="instances_w1",
        check="feature_drift",
        partition="2026-06-15",
        severity="WARN",
        blocking=False,
        description="instances_w1 week=2026-06-15: PSI 0.14 on column n_events",
        metadata={"psi": 0.14},
        run_id="run-1",
        storage_id=7,
        occurred_at=1_780_000_000.0,
    )
    return check_alert(**{**values, **overrides})


def test_dedupe_key_names_asset_check_partition_and_origin():
    assert _check_alert()["alert_id"] == "check|instances_w1|feature_drift|2026-06-15|run:run-1"
    # Runless results share run id "": the record id tells them apart.
    assert _check_alert(run_id="")["alert_id"] == "check|instances_w1|feature_drift|2026-06-15|id:7"
    assert _check_alert(partition=None)["alert_id"] == "check|instances_w1|feature_drift|-|run:run-1"
    assert _check_alert(run_id="run-2")["alert_id"] != _check_alert()["alert_id"]


def test_slack_payload_has_text_and_blocks():
    alert = _check_alert(description="x" * 5000, metadata={f"k{i}": i for i in range(30)})
    payload = slack_payload(alert)
    assert set(payload) == {"text", "blocks"}
    assert "instances_w1 / feature_drift" in payload["text"]
    header, section, context = payload["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert section["type"] == "section" and len(section["text"]["text"]) <= 3000
    assert "partition `2026-06-15`" in context["elements"][0]["text"]
    json.dumps(payload)  # serialisable as is


def test_freshness_alert_reads_as_a_failure():
    alert = freshness_alert(
        asset="predictions",
        new_state="FAIL",
        previous_state="PASS",
        policy="fails when not updated for 26 hours",
        storage_id=12,
        occurred_at=1_780_000_000.0,
    )
    assert (alert["kind"], alert["severity"]) == ("freshness_failed", "ERROR")
    assert alert["alert_id"] == "freshness|predictions|id:12"
    assert "26 hours" in slack_payload(alert)["text"]


def test_alert_state_sends_each_alert_once_and_forgets_only_what_is_too_old():
    now = 1_780_000_000.0
    state = AlertState.from_cursor(None, now)
    assert state.since == now - alerts.INITIAL_LOOKBACK.total_seconds()
    old = _check_alert(run_id="old")
    recent = _check_alert(run_id="recent")
    candidates = [(recent, now - 60), (old, now - 2 * 86400)]  # the old one predates the first tick
    assert [a["alert_id"] for a in new_alerts(candidates, state)] == [recent["alert_id"]]
    restored = AlertState.from_cursor(state.to_cursor(), now + 60)
    assert new_alerts(candidates, restored) == []  # same failures, next tick: nothing
    later = _check_alert(run_id="later")
    assert new_alerts([(later, now + 30), (recent, now - 60)], restored) == [later]
    restored.prune(now + timedelta(days=30).total_seconds())
    assert restored.sent == {}
    assert new_alerts([(recent, now - 60)], restored) == []  # pruned, and older than `since`


def test_post_json_reports_errors_instead_of_raising():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    error = alerts.post_json(f"http://127.0.0.1:{closed_port}/hook", {"text": "x"}, timeout=2)
    assert error and "refused" in error.lower()
    assert alerts.post_json("file:///etc/passwd", {"text": "x"}) == f"{alerts.WEBHOOK_ENV} must be an http(s) URL"


# --- the sensor ------------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # keep the test output quiet
        pass


@contextmanager
def webhook_server(lifetime: float = 30.0):
    """A Slack-like webhook on 127.0.0.1 that records what it receives; stops by itself."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    watchdog = threading.Timer(lifetime, server.shutdown)
    thread.start()
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", server.received
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def location():
    from churn_assets.definitions import defs

    return defs


def report_failed_check(instance, asset: str, check: str, partition: str | None, run_id: str) -> None:
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name=check,
        passed=False,
        partition=partition,
        severity=dg.AssetCheckSeverity.WARN,  # non-blocking: the run succeeds, only this sensor sees it
        blocking=False,
        description=f"{asset}: predictions week=2026-06-22 not scored by the deadline",
        metadata={"expected_partition": "2026-06-22"},
    )
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
            event_specific_data=evaluation,
            job_name="__test__",
        ),
        run_id=run_id,
    )


def report_freshness_failure(instance, asset: str) -> None:
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=dg.AssetKey(asset),
            new_state=FreshnessState.FAIL,
            previous_state=FreshnessState.PASS,
            state_change_timestamp=time.time(),
        )
    )


def tick(instance, location, storage, cursor):
    webhook = AlertWebhook(url=os.environ.get(alerts.WEBHOOK_ENV))  # what the bound EnvVar resolves to
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"storage": storage, "alert_webhook": webhook},
        definitions=location,
    )
    result = alerts.churn_alerts_sensor(context)
    return result.cursor


def read_lines(storage: StorageRoot) -> list[dict]:
    if not storage.exists(alerts.ALERTS_FILE):
        return []
    return [json.loads(line) for line in storage.read_text(alerts.ALERTS_FILE).splitlines()]


def test_sensor_posts_writes_and_never_repeats_an_alert(tmp_path, monkeypatch, location):
    storage = StorageRoot(root=str(tmp_path / "root"))
    with webhook_server() as (url, received), dg.instance_for_test() as instance:
        monkeypatch.setenv(alerts.WEBHOOK_ENV, url)
        first_run = make_new_run_id()
        report_failed_check(instance, "predictions", "current_week_deadline", None, first_run)
        report_freshness_failure(instance, "predictions")

        cursor = tick(instance, location, storage, None)
        assert len(received) == 2
        paths = {path for path, _, _ in received}
        assert paths == {"/hook"}
        assert {content_type for _, content_type, _ in received} == {"application/json"}
        check_text, freshness_text = (payload["text"] for _, _, payload in received)  # oldest first
        assert check_text.startswith(":warning: Asset check failed: predictions / current_week_deadline")
        assert freshness_text.startswith(":red_circle: Freshness FAIL: predictions") and "26 hours" in freshness_text
        assert all(payload["blocks"] for _, _, payload in received)
        lines = read_lines(storage)
        assert [line["kind"] for line in lines] == ["asset_check_failed", "freshness_failed"]
        assert lines[0]["run_id"] == first_run and lines[0]["severity"] == "WARN"
        assert {line["webhook"] for line in lines} == {"sent"}

        # The next tick sees the same failures: no second post, no second line.
        cursor = tick(instance, location, storage, cursor)
        assert len(received) == 2 and len(read_lines(storage)) == 2

        # The same check failing again in a new run is a new failure.
        report_failed_check(instance, "predictions", "current_week_deadline", None, make_new_run_id())
        tick(instance, location, storage, cursor)
        assert len(received) == 3 and len(read_lines(storage)) == 3


def test_sensor_logs_and_records_a_failed_webhook_without_raising(tmp_path, monkeypatch, location):
    storage = StorageRoot(root=str(tmp_path / "root"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv(alerts.WEBHOOK_ENV, f"http://127.0.0.1:{closed_port}/hook")
    with dg.instance_for_test() as instance:
        report_failed_check(instance, "predictions", "current_week_deadline", None, make_new_run_id())
        cursor = tick(instance, location, storage, None)
        [line] = read_lines(storage)
        assert line["webhook"].startswith("failed:")
        tick(instance, location, storage, cursor)  # failed delivery is not retried forever
        assert len(read_lines(storage)) == 1


def test_sensor_without_webhook_still_writes_the_line(tmp_path, monkeypatch, location):
    storage = StorageRoot(root=str(tmp_path / "root"))
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    with dg.instance_for_test() as instance:
        report_freshness_failure(instance, "instances_w1")
        # A freshness state that is not a failure is no alert.
        instance.report_runless_asset_event(
            FreshnessStateChange(
                key=dg.AssetKey("churn_model"),
                new_state=FreshnessState.PASS,
                previous_state=FreshnessState.UNKNOWN,
                state_change_timestamp=time.time(),
            )
        )
        tick(instance, location, storage, None)
        [line] = read_lines(storage)
        assert (line["asset"], line["kind"]) == ("instances_w1", "freshness_failed")
        assert line["webhook"].startswith("not configured")


def test_the_webhook_is_bound_from_the_environment_by_name_never_by_value(monkeypatch):
    """The URL is a secret: the binding holds a dg.EnvVar (its name), resolved when the sensor runs."""
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    assert alert_webhook_from_environment().target is None
    monkeypatch.setenv(alerts.WEBHOOK_ENV, "https://hooks.example.invalid/T000/B000/secret")
    bound = alert_webhook_from_environment().url
    assert isinstance(bound, dg.EnvVar) and bound.env_var_name == alerts.WEBHOOK_ENV
    with pytest.raises(RuntimeError, match="defers resolution"):  # Dagster itself never hands it out as text
        str(bound)
