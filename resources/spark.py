"""Spark for the feature tables: local mode by default, a cluster by one setting.

The session is created lazily (the JVM starts only in steps that use Spark) and once per process:
`getOrCreate` hands every later step of the same run, and every test, the same session.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from dagster_pyspark import LazyPySparkResource


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
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch}",
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
