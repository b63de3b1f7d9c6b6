"""Spark for the feature tables: local mode by default, a cluster by one setting.

The session is created lazily (the JVM starts only in steps that use Spark) and once per process:
`getOrCreate` hands every later step of the same run, and every test, the same session.

Every run is a fresh process, so every run pays the driver JVM's start: loading and verifying
some 15,000 classes of Spark, before and during its first query. A class-data-sharing archive
(JDK AppCDS, `-XX:SharedArchiveFile`) of the classes a feature run loads takes about 3 s off the
JVM start and 3 s off the first query (measured on the 2-core machine, BENCHMARKS.md).
`build_class_archive` makes it once per environment (`make install` does), by running a small
feature workload in a JVM that dumps its classes at exit; the archive is only put in place once
that JVM has exited cleanly, because the JVM crashes on a truncated archive. Absent, disabled
(CHURN_SPARK_CDS=0) or stale (the JVM rejects an archive of another JDK or class path, silently),
Spark starts as usual.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dagster_pyspark import LazyPySparkResource


CDS_ENV = "CHURN_SPARK_CDS"  # "0" turns the class archive off
CDS_DIR_ENV = "CHURN_SPARK_CDS_DIR"  # where archives live (default: inside this environment)
CDS_DUMP_ENV = "CHURN_SPARK_CDS_DUMP"  # set by build_class_archive for the JVM that writes one
# The JVM reports a rejected or skipped class (signed jars, a stale archive) as a warning on stdout.
_QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def class_archive_path() -> Path:
    """The archive for this environment's pyspark and this machine's java.

    The name changes with either, so an upgrade never meets an archive of the old classes (the JVM
    would refuse it anyway, at the cost of the saving).
    """
    import pyspark

    java_home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=os.path.join(java_home, "bin") if java_home else None) or "java"
    java = os.path.realpath(java)
    identity = "|".join((pyspark.__version__, os.path.realpath(pyspark.__file__), java))
    folder = Path(os.environ.get(CDS_DIR_ENV) or Path(sys.prefix) / "share" / "churn-spark-cds")
    return folder / f"spark-{pyspark.__version__}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}.jsa"


def class_archive_options() -> str:
    """Driver JVM options for the class archive: write one (inside build_class_archive), use the
    one in place, or nothing."""
    if dump := os.environ.get(CDS_DUMP_ENV):
        return f"-XX:ArchiveClassesAtExit={dump} {_QUIET_CDS}"
    if os.environ.get(CDS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return ""
    archive = class_archive_path()
    return f"-XX:SharedArchiveFile={archive} {_QUIET_CDS}" if archive.is_file() else ""


def build_class_archive(timeout: float = 600.0) -> Path:
    """Write the class archive for this environment (about 30 s): a small feature workload
    (churn_assets/spark_warmup.py) in a JVM that dumps the classes it loaded when it exits.

    The JVM writes a temporary file; it becomes the archive only after that JVM exited with 0, so
    no process ever maps a half-written archive. Returns the archive's path.
    """
    archive = class_archive_path()
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    env = {**os.environ, CDS_DUMP_ENV: str(partial)}
    try:
        done = subprocess.run([sys.executable, "-m", "churn_assets.spark_warmup"], env=env, timeout=timeout,
                              capture_output=True, text=True)
        if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            raise RuntimeError(
                f"the Spark class archive was not written (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive


def spark_config(master: str | None = None, remote: str | None = None, cores: int | None = None) -> dict[str, str]:
    """Spark settings for one process.

    `remote` (`sc://host:15002`) selects Spark Connect, `master` a cluster (`spark://host:7077`);
    neither means local mode on this machine's cores. The Hive catalog is on so the talk's external
    table DDL runs as written; its Derby metastore and warehouse live in a per-process temporary
    folder, so no metastore_db/ or derby.log lands in the working directory and two processes never
    share an embedded Derby (which allows one JVM at a time).
    """
    cores = cores or os.cpu_count() or 2
    scratch = tempfile.mkdtemp(prefix="churn-spark-")
    config = {
        "spark.app.name": "churn_prediction_unleashed",
        # Small tables on few cores: the default 200 shuffle partitions is pure overhead.
        "spark.sql.shuffle.partitions": str(max(2, cores * 2)),
        "spark.sql.session.timeZone": "UTC",
        # toPandas of the feature tables through Arrow, not row by row through py4j.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": os.path.join(scratch, "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={os.path.join(scratch, 'metastore_db')};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch} {class_archive_options()}".strip(),
        "spark.driver.memory": os.environ.get("CHURN_SPARK_DRIVER_MEMORY", "2g"),
    }
    if remote:
        # Spark Connect: the server owns the catalog and the JVM options.
        return {"spark.remote": remote, "spark.sql.shuffle.partitions": config["spark.sql.shuffle.partitions"],
                "spark.sql.session.timeZone": "UTC"}
    config["spark.master"] = master or f"local[{cores}]"
    if master and not master.startswith("local"):
        # A cluster's executors start their own Python workers (e.g. for `createDataFrame` of
        # local rows): the interpreter with this project's packages, at the same path on every
        # host (PYSPARK_PYTHON overrides it where the executors' image differs).
        config["spark.pyspark.python"] = os.environ.get("PYSPARK_PYTHON") or sys.executable
    return config


def connect_session(spark_config: dict[str, Any]):
    """A Spark Connect session on `spark_config["spark.remote"]`, the other settings applied to it.

    Opened with the Connect client's own builder, not `pyspark.sql.SparkSession.builder`: the
    classic builder refuses a remote session while a classic SparkContext is alive in the process
    (SESSION_ALREADY_EXIST) and sets SPARK_CONNECT_MODE_ENABLED for the whole process, which turns
    every later classic `getOrCreate` into a Connect one.
    """
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    settings = {k: str(v) for k, v in spark_config.items() if k not in ("spark.remote", "spark.master")}
    return RemoteSparkSession.builder.remote(spark_config["spark.remote"]).config(map=settings).getOrCreate()


class ChurnSparkResource(LazyPySparkResource):
    """LazyPySparkResource that also opens Spark Connect sessions (`spark.remote` in the config).

    Local mode and `spark://` masters go through dagster_pyspark unchanged. Under Spark Connect
    `spark_session` is a `pyspark.sql.connect` session: the DataFrame and SQL API only, no
    `sparkContext` (nothing in churn_assets uses it).
    """

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def _init_session(self) -> None:
        if self._spark_session is None and self.spark_config.get("spark.remote"):
            self._spark_session = connect_session(self.spark_config)
        super()._init_session()


def spark_resource(master: str | None = None, remote: str | None = None) -> ChurnSparkResource:
    return ChurnSparkResource(spark_config=spark_config(master=master, remote=remote))
