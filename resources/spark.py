"""Spark for the feature tables: local mode by default, a cluster by one setting.

The session is created lazily (the JVM starts only in steps that use Spark) and once per process:
`getOrCreate` hands every later step of the same run, and every test, the same session.
"""

from __future__ import annotations

import os
import tempfile

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
    return config


def spark_resource(master: str | None = None, remote: str | None = None) -> LazyPySparkResource:
    return LazyPySparkResource(spark_config=spark_config(master=master, remote=remote))
