"""The feature tables on real Spark clusters equal those of local mode, row for row and byte for byte.

The fixtures start, on loopback and from the pip wheel's own launchers, a Spark standalone master
with two one-core workers, and a Spark Connect server; both are stopped (their process groups
killed) at the end of the module. The two-week ranges of `instances_modeling` and `instances_w1`
are computed on a small simulated data set in local mode (the test run's one Spark session), on
the standalone cluster and through Spark Connect, and compared exactly: the frames
`compute_feature_table` returns (values and dtypes) and the CSV files the assets write.

A process has one SparkContext: the test run's local session owns it, so the standalone cluster's
driver runs in a subprocess (this file run as a script). A Spark Connect session is only a gRPC
client and runs in this process beside the local one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
TABLES = {
    # table -> first and last cohort week of the range computed (Mondays, inclusive)
    "instances_modeling": (date(2026, 9, 14), date(2026, 9, 21)),
    "instances_w1": (date(2026, 9, 28), date(2026, 10, 5)),
}
LABEL_WINDOW_DAYS = 30
STARTUP_TIMEOUT = 90  # seconds, per server, on two loaded cores

pytestmark = pytest.mark.slow


# --- helpers shared with the subprocess -------------------------------------------------------


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def range_tags(first: date, last: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def compute_and_write(spark_resource_, raw: Path, out: Path) -> None:
    """Materialize both tables' ranges on `spark_resource_`; write what is compared under `out`.

    `out/root/`: a storage root with a copy of the raw tables, where the assets write their CSVs;
    `out/frames/`: the frames of each asset's compute_feature_table call (rows, exclusions) as
    Parquet, recorded on the way, so each table is computed once.
    """
    from unittest import mock

    import dagster as dg

    import churn_assets.assets.tables as tables_module
    import churn_assets.feature_build as feature_build
    from resources.emr_serverless import EMRServerlessFeatureJobs
    from resources.storage import StorageRoot

    (out / "frames").mkdir(parents=True, exist_ok=True)
    shutil.copytree(raw / "raw", out / "root" / "raw")
    storage = StorageRoot(root=str(out / "root"))
    compute = feature_build.compute_feature_table

    def recording(*args, **kwargs):
        result = compute(*args, **kwargs)
        for part in ("rows", "exclusions"):
            frame = getattr(result, part).copy()
            frame.attrs = {}  # Spark Connect's toPandas puts its plan metrics there
            frame.to_parquet(out / "frames" / f"{result.table}.{part}.parquet")
        return result

    resources = {
        "spark": spark_resource_,
        "storage": storage,
        "io_manager": dg.InMemoryIOManager(),
        "emr_serverless": EMRServerlessFeatureJobs(),
    }
    with mock.patch.object(feature_build, "compute_feature_table", recording):
        for asset in (tables_module.instances_modeling, tables_module.instances_w1):
            first, last = TABLES[asset.key.to_user_string()]
            assert dg.materialize([asset], resources=resources, tags=range_tags(first, last)).success


def _cluster_main(master: str, raw: str, out: str) -> None:
    """Subprocess entry: the standalone cluster's driver (this process gets its own SparkContext)."""
    from resources.spark import spark_resource

    resource = spark_resource(master=master)
    session = resource.spark_session
    context = session.sparkContext
    context.setLogLevel("ERROR")
    # Executors register asynchronously: wait for both workers' before the first job.
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while context._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() < deadline:
        time.sleep(0.5)  # the driver's block manager + one per executor
    facts = {
        "master": context.master,
        "block_managers": context._jsc.sc().getExecutorMemoryStatus().size(),
        "default_parallelism": context.defaultParallelism,
        "python": context.getConf().get("spark.pyspark.python"),
    }
    compute_and_write(resource, Path(raw), Path(out))
    (Path(out) / "cluster.json").write_text(json.dumps(facts))
    session.stop()


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return f"--- last {lines} lines of {path} ---\n" + "\n".join(text[-lines:])


@contextlib.contextmanager
def logs_on_failure(*logs: Path):
    """On any failure inside, print the tails of the servers' logs (pytest shows them)."""
    try:
        yield
    except BaseException:
        for log in logs:
            print(tail(log))
        raise


def spark_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP="127.0.0.1",  # bind and advertise loopback, whatever the host name resolves to
        SPARK_DAEMON_MEMORY="512m",
        PYSPARK_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        CHURN_ENV="test",
        # Every JVM here is short-lived and works on tiny data: the C1 compiler and the serial
        # collector start faster and leave the two cores to the work.
        JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    )
    env.pop("SPARK_CONF_DIR", None)
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return env


class Processes:
    """Servers started in their own process groups, logs in a folder, all killed on stop()."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, args: list[str], cwd: Path) -> Path:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                args, cwd=cwd, env=spark_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((process, log))
        return log

    def check_alive(self) -> None:
        for process, log in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{log.stem} exited with {process.returncode}\n{tail(log)}")

    def wait_for(self, what: str, ready, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.5)
        logs = "\n".join(tail(log) for _, log in self.started)
        raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{logs}")

    def stop(self) -> None:
        for process, _ in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def master_status(web_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/json/", timeout=2) as response:
        return json.load(response)


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


# --- fixtures ----------------------------------------------------------------------------------
# The servers and the cluster's driver start without waiting where they can, so their JVMs boot
# while local mode computes the reference.


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server (local[2] behind it), started now; `ready()` waits for it."""
    base = tmp_path_factory.mktemp("connect")
    jars = sorted((spark_home() / "jars").glob("spark-connect_*.jar"))
    assert jars, f"no spark-connect jar in {spark_home() / 'jars'}"
    # The server's jar ships in the wheel's jars/, already on spark-submit's classpath: no --jars.
    port = free_port()
    processes = Processes(base)
    try:
        log = processes.start(
            "connect",
            [str(spark_home() / "bin" / "spark-submit"),
             "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
             "--name", "churn-connect-test", "--master", "local[2]", "--driver-memory", "1g",
             "--conf", f"spark.connect.grpc.binding.port={port}",
             "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
             "--conf", "spark.ui.enabled=false",
             "--conf", "spark.sql.shuffle.partitions=4",
             "--conf", f"spark.sql.warehouse.dir={base / 'warehouse'}",
             "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={base}",
             "spark-internal"],
            cwd=base,
        )

        class Server:
            url = f"sc://127.0.0.1:{port}"

            def __init__(self):
                self.log = log

            def ready(self) -> str:
                processes.wait_for("the Spark Connect server", lambda: port_open(port))
                return self.url

        yield Server()
    finally:
        processes.stop()


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A small simulated data set (dirty telemetry included) with both ranges' raw partitions."""
    from churn_assets.simulator import simulate

    root = tmp_path_factory.mktemp("sim")
    summary = simulate(root, instances=160, weeks=2, as_of=date(2026, 11, 2), seed=11)
    assert (summary.first_labelled_week, summary.last_labelled_week) == TABLES["instances_modeling"]
    return root


@pytest.fixture(scope="module")
def standalone(raw, tmp_path_factory):
    """A standalone master, two workers (1 core, 1 GiB each) and the cluster's driver, started.

    The driver (this file as a script, its own process and SparkContext) is launched as soon as
    both workers are registered; the test waits for it.
    """
    base = tmp_path_factory.mktemp("standalone")
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, web = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    processes = Processes(base)
    try:
        processes.start(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master",
             "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web)],
            cwd=base,
        )
        processes.wait_for("the standalone master", lambda: master_status(web)["status"] == "ALIVE")
        for n in (1, 2):
            work = base / f"worker{n}"
            work.mkdir()
            processes.start(
                f"worker{n}",
                [spark_class, "org.apache.spark.deploy.worker.Worker", master,
                 "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                 "--webui-port", str(free_port()), "--work-dir", str(work)],
                cwd=base,
            )
        processes.wait_for("two workers", lambda: master_status(web)["aliveworkers"] == 2)
        out = base / "out"
        processes.start("driver", [sys.executable, __file__, master, str(raw), str(out)], cwd=REPO)
        driver = processes.started[-1][0]
        yield {"master": master, "web": web, "logs": base, "out": out, "driver": driver}
    finally:
        processes.stop()


@pytest.fixture(scope="module")
def local(spark, raw, tmp_path_factory) -> Path:
    """Local mode's frames and CSVs: the reference."""
    from resources.spark import spark_resource

    out = tmp_path_factory.mktemp("local")
    compute_and_write(spark_resource(), raw, out)
    return out


# --- comparisons -------------------------------------------------------------------------------


def assert_same_outputs(local: Path, other: Path) -> None:
    for table in TABLES:
        for part in ("rows", "exclusions"):
            expected = pd.read_parquet(local / "frames" / f"{table}.{part}.parquet")
            actual = pd.read_parquet(other / "frames" / f"{table}.{part}.parquet")
            assert len(expected) > 0, f"{table}.{part}: the reference is empty"
            pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    csvs = sorted(p.relative_to(local / "root") for p in (local / "root" / "models").rglob("*.csv"))
    assert len(csvs) == 6  # two weeks of each table, and the training table's two day-by-day files
    assert csvs == sorted(p.relative_to(other / "root") for p in (other / "root" / "models").rglob("*.csv"))
    for relative in csvs:
        assert (other / "root" / relative).read_bytes() == (local / "root" / relative).read_bytes(), relative


# Fixture order matters for the runtime: the cluster and the Connect server boot while `local` runs.
def test_standalone_cluster_computes_the_same_tables(standalone, connect_server, local):
    logs = standalone["logs"]
    with logs_on_failure(logs / "driver.log", logs / "master.log", logs / "worker1.log", logs / "worker2.log"):
        code = standalone["driver"].wait(timeout=240)
        assert code == 0, f"the cluster's driver exited with {code}"
        facts = json.loads((standalone["out"] / "cluster.json").read_text())
        assert facts["master"] == standalone["master"]
        assert facts["block_managers"] == 3  # the driver and one executor on each worker
        assert facts["default_parallelism"] == 2  # the workers' two cores
        assert facts["python"] == sys.executable
        assert_same_outputs(local, standalone["out"])
        # The master saw the application finish, with both workers' cores.
        apps = master_status(standalone["web"])["completedapps"]
        (app,) = [a for a in apps if a["name"] == "churn_prediction_unleashed"]
        assert app["cores"] == 2


def test_spark_connect_computes_the_same_tables(connect_server, spark, raw, local, tmp_path):
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    from resources.spark import spark_resource

    with logs_on_failure(connect_server.log):
        resource = spark_resource(remote=connect_server.ready())
        session = resource.spark_session
        try:
            assert isinstance(session, RemoteSparkSession)
            assert session.conf.get("spark.sql.session.timeZone") == "UTC"
            compute_and_write(resource, raw, tmp_path / "connect")
            assert_same_outputs(local, tmp_path / "connect")
            # The local session is untouched: the process did not switch to Connect mode.
            assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ
            assert SparkSession.builder.getOrCreate() is spark
            assert spark.range(3).count() == 3
        finally:
            session.stop()


def test_plain_lazy_resource_cannot_open_connect_beside_a_local_session(spark):
    """Why resources.spark has its own resource: dagster_pyspark goes through the classic builder,
    which refuses a Connect session while a classic SparkContext lives (before connecting)."""
    from dagster_pyspark import LazyPySparkResource
    from pyspark.errors import PySparkRuntimeError

    with pytest.raises(PySparkRuntimeError, match="SESSION_ALREADY_EXIST"):
        LazyPySparkResource(spark_config={"spark.remote": "sc://127.0.0.1:1"}).spark_session
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _cluster_main(*sys.argv[1:])
