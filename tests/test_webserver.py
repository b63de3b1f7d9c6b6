"""`make dev`'s UI: dagster-webserver on loopback serves every asset, check, schedule and sensor."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 120.0

QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
  assetNodes {
    assetKey { path }
    groupName
    description
    kinds
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    automationCondition { label expandedLabel }
    assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } }
  }
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        schedules { name cronSchedule scheduleState { status } }
        sensors { name sensorState { status } }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_until_up(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if b"dagster_webserver_version" in get(f"{base}/server_info"):
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer within {STARTUP_TIMEOUT:.0f}s:\n{log.read_text()[-3000:]}")


def expected_location():
    """What the code location defines, read in this process from the same module."""
    from churn_assets.definitions import defs

    repository = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    return (
        {key.to_user_string() for key in graph.get_all_asset_keys()},
        {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys},
        {schedule.name for schedule in repository.schedule_defs},
        {sensor.name for sensor in repository.sensor_defs},
    )


@pytest.mark.slow
def test_webserver_serves_every_asset_check_schedule_and_sensor(tmp_path):
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    (home / "dagster.yaml").touch()
    env = {**os.environ, "CHURN_ENV": "test", "DAGSTER_HOME": str(home), "CHURN_DATA_ROOT": str(data)}
    env.pop("CHURN_ALERT_WEBHOOK", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "webserver.log"
    webserver = Path(sys.executable).parent / "dagster-webserver"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the code server child goes with it
        )
    try:
        wait_until_up(base, process, log)
        result = graphql(base, QUERY)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    [entry] = result["workspaceOrError"]["locationEntries"]
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry

    assets, checks, schedules, sensors = expected_location()
    nodes = {"/".join(node["assetKey"]["path"]): node for node in result["assetNodes"]}
    assert set(nodes) == assets
    assert {
        "raw_instances", "raw_usage_events", "raw_conversions", "instances_modeling", "instances_w1",
        "preprocessor", "churn_model", "model_evaluation", "predictions",
    } <= assets
    served_checks = {
        (name, check["name"])
        for name, node in nodes.items()
        for check in node["assetChecksOrError"]["checks"]
    }
    assert served_checks == checks
    assert {("predictions", "current_week_deadline"), ("model_evaluation", "model_gate_passed")} <= checks

    [repository] = result["repositoriesOrError"]["nodes"]
    served_schedules = {s["name"]: s for s in repository["schedules"]}
    served_sensors = {s["name"]: s for s in repository["sensors"]}
    assert set(served_schedules) == schedules >= {"weekly_retrain_schedule", "daily_scoring_schedule"}
    assert set(served_sensors) == sensors >= {"churn_automation_sensor", "churn_alerts_sensor"}
    # One cadence mechanism runs by default: automation; the schedules are the opt-in alternative.
    assert served_sensors["churn_automation_sensor"]["sensorState"]["status"] == "RUNNING"
    assert served_sensors["churn_alerts_sensor"]["sensorState"]["status"] == "RUNNING"
    assert {s["scheduleState"]["status"] for s in served_schedules.values()} == {"STOPPED"}
    assert served_schedules["weekly_retrain_schedule"]["cronSchedule"] == "0 6 * * 1"
    assert served_schedules["daily_scoring_schedule"]["cronSchedule"] == "0 5 * * *"

    # The UI's lineage reads well: every computed asset has a group, a description, owners and
    # kinds, and the six of the pipeline show their automation condition.
    for name, node in nodes.items():
        if name.startswith("raw_"):
            assert node["groupName"] == "raw_telemetry" and node["automationCondition"] is None
            continue
        assert node["groupName"] and node["groupName"] != "default", name
        assert node["description"], name
        assert node["owners"] and node["kinds"], name
    pipeline = ("instances_modeling", "instances_w1", "preprocessor", "churn_model", "model_evaluation", "predictions")
    for name in pipeline:
        assert nodes[name]["automationCondition"], name
