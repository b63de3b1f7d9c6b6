"""The workload whose classes make the Spark class archive (resources/spark.py, build_class_archive).

Run only by `build_class_archive`, in its own process, with CHURN_SPARK_CDS_DUMP naming the file
the driver JVM dumps its loaded classes into at exit: both feature tables and the report's daily
query over a small simulated data set, the code paths every run takes. It then closes the JVM's
stdin (PySpark's gateway exits on EOF, dumping the archive) and waits for it, so that the exit code
says whether the archive was written whole.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import date

WARMUP_AS_OF = date(2026, 3, 2)
JVM_EXIT_TIMEOUT_SECONDS = 300


def main() -> int:
    from resources.spark import CDS_DUMP_ENV

    if not os.environ.get(CDS_DUMP_ENV):
        sys.exit(f"churn_assets.spark_warmup is run by resources.spark.build_class_archive ({CDS_DUMP_ENV} unset)")
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from churn_assets.contract import RAW_INSTANCES
    from churn_assets.features import compute_feature_table, read_sql, register_w1_views
    from churn_assets.raw_tables import available_weeks
    from churn_assets.simulator import simulate
    from churn_assets.weeks import parse_week
    from resources.spark import spark_config
    from resources.storage import StorageRoot

    with tempfile.TemporaryDirectory(prefix="churn-spark-warmup-") as folder:
        simulate(folder, instances=400, weeks=2, as_of=WARMUP_AS_OF, seed=1)
        storage = StorageRoot(root=folder)
        weeks = [parse_week(week) for week in available_weeks(storage, RAW_INSTANCES)]
        builder = SparkSession.builder
        for key, value in spark_config().items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        for table in ("instances_w1", "instances_modeling"):
            compute_feature_table(spark, storage, table, weeks[0], weeks[-1], 30)
        register_w1_views(spark, weeks[0], weeks[-1])
        spark.sql(read_sql("w1_daily.sql")).toPandas()
        gateway = SparkContext._gateway
        spark.stop()
    jvm = gateway.proc
    jvm.stdin.close()  # EOF: the gateway JVM exits, writing the archive on its way out
    return jvm.wait(timeout=JVM_EXIT_TIMEOUT_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
