# The data-prep step of the interactive benchmark, the same text in both paths: run as a Livy statement
# (where `spark` exists) and, after a SparkSession header, as a spark-submit job. CSV_PATH is set above it.
import json as _json
import time as _time

from pyspark.sql import functions as _F
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

_t0 = _time.time()
_schema = StructType([
    StructField("id", LongType()),
    StructField("category", StringType()),
    StructField("region", StringType()),
    StructField("amount", DoubleType()),
    StructField("active", BooleanType()),
])
_rows = (
    spark.read.csv(CSV_PATH, header=True, schema=_schema)
    .filter((_F.col("amount") > 50.0) & _F.col("active"))
    .groupBy("category", "region")
    .count()
    .orderBy("category", "region")
    .collect()
)
print("PREP_RESULT " + _json.dumps({
    "groups": [[r["category"], r["region"], r["count"]] for r in _rows],
    "stepSeconds": _time.time() - _t0,
}))
