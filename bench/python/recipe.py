# The data-prep recipe of the interactive benchmark: K steps a data engineer adds one at a time to a sample
# of raw order events, looking at each step's result. The same text runs on both paths:
#   - in a warm Livy session it is sent once as a statement (defining these names in the REPL); the sample
#     is loaded and cached once (load_sample), then each statement is `df_k = run_step(k, df_<k-1>, ctx)`;
#   - as a batch job, recipe_job.py imports it and runs steps 1..k on a fresh read, then looks at step k.
# Only the DataFrame API is used (no Python UDFs), so Spark's work is the same JVM plan on both paths.
# Results are made comparable exactly: money is decimal (sums are exact whatever the order rows meet in),
# every ordered look breaks ties on a unique key, and duplicates removed by dedupe are byte-identical.
import json as _json
import time as _time
from datetime import date as _date
from datetime import datetime as _datetime
from decimal import Decimal as _Decimal

from pyspark.sql import Window as _Window
from pyspark.sql import functions as _F
from pyspark.sql.types import DecimalType as _Dec


def load_sample(spark, orders_csv, products_csv):
    """The raw sample as it arrives: every column a string (no schema inference, which would read twice)."""
    raw = spark.read.csv(orders_csv, header=True)
    dim = spark.read.csv(products_csv, header=True).select(
        _F.col("product_id").cast("int").alias("product_id"),
        "product_name",
        "category",
        "department",
        _F.col("unit_cost").cast(_Dec(10, 2)).alias("unit_cost"),
    )
    return raw, {"products": dim}


def cache_info(spark):
    """What the cache holds (MB in memory, on disk) and the driver's heap: does the sample fit?"""
    infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
    mb = 1024 * 1024
    return {
        "cacheMemMB": round(sum(i.memSize() for i in infos) / mb, 1),
        "cacheDiskMB": round(sum(i.diskSize() for i in infos) / mb, 1),
        "maxHeapMB": round(spark._jvm.java.lang.Runtime.getRuntime().maxMemory() / mb),
    }


def s1_parse(df, ctx):
    # types from strings; "" and "n/a" become null (ANSI mode off, Spark's default)
    return df.select(
        _F.col("order_id").cast("long").alias("order_id"),
        _F.to_timestamp("ts", "yyyy-MM-dd HH:mm:ss").alias("ts"),
        _F.col("customer_id").cast("int").alias("customer_id"),
        _F.col("product_id").cast("int").alias("product_id"),
        _F.col("quantity").cast("int").alias("quantity"),
        _F.col("unit_price").cast(_Dec(10, 2)).alias("unit_price"),
        _F.lower(_F.trim("status")).alias("status"),
        _F.upper("country").alias("country"),
        "channel",
    )


def s2_filter(df, ctx):
    return df.where(
        (_F.col("status") == "completed")
        & _F.col("unit_price").isNotNull()
        & (_F.col("quantity") > 0)
        & _F.col("ts").isNotNull()
    )


def s3_dedupe(df, ctx):
    return df.dropDuplicates(["order_id"])


def s4_derive(df, ctx):
    revenue = _F.col("quantity") * _F.col("unit_price")
    return (
        df.withColumn("revenue", revenue)
        .withColumn("order_date", _F.to_date("ts"))
        .withColumn("month", _F.date_format("ts", "yyyy-MM"))
        .withColumn("hour", _F.hour("ts"))
        .withColumn(
            "basket",
            _F.when(revenue >= 500, "large").when(revenue >= 100, "medium").otherwise("small"),
        )
    )


def s5_join(df, ctx):
    # a small dimension: Spark broadcasts it (under spark.sql.autoBroadcastJoinThreshold); inner join drops
    # the unknown products
    return df.join(ctx["products"], "product_id").withColumn(
        "margin", _F.col("revenue") - _F.col("quantity") * _F.col("unit_cost")
    )


def s6_window(df, ctx):
    w = _Window.partitionBy("customer_id").orderBy("ts", "order_id")
    return (
        df.withColumn("order_seq", _F.row_number().over(w))
        .withColumn("revenue_to_date", _F.sum("revenue").over(w.rowsBetween(_Window.unboundedPreceding, 0)))
        .withColumn("days_since_prev", _F.datediff("order_date", _F.lag("order_date").over(w)))
    )


def s7_aggregate(df, ctx):
    return df.groupBy("department", "month").agg(
        _F.count("*").alias("orders"),
        _F.countDistinct("customer_id").alias("customers"),
        _F.sum("revenue").alias("revenue"),
        _F.sum("margin").alias("margin"),
        _F.sum(_F.when(_F.col("order_seq") > 1, 1).otherwise(0)).alias("repeat_orders"),
    )


def s8_rank(df, ctx):
    by_month = _Window.partitionBy("month").orderBy(_F.desc("revenue"), "department")
    by_dept = _Window.partitionBy("department").orderBy("month")
    return df.withColumn("rank_in_month", _F.rank().over(by_month)).withColumn(
        "revenue_growth", _F.col("revenue") / _F.lag("revenue").over(by_dept) - 1
    )


def _first(n, *cols):
    return lambda df: df.orderBy(*cols).limit(n).collect()


def _count(df):
    return df.count()


def _all(*cols):
    return lambda df: df.orderBy(*cols).collect()


# (name, transformation, what the engineer looks at, how)
STEPS = [
    ("parse and cast", s1_parse, "first 5 rows", _first(5, "order_id")),
    ("filter valid completed orders", s2_filter, "count", _count),
    ("dedupe re-sent events", s3_dedupe, "count", _count),
    ("derive revenue, date, month, hour, basket", s4_derive, "first 5 rows", _first(5, "order_id")),
    ("join the product dimension, margin", s5_join, "first 5 rows", _first(5, "order_id")),
    (
        "window per customer: sequence, running revenue, days since previous",
        s6_window,
        "first 5 rows",
        _first(5, "customer_id", "order_seq"),
    ),
    ("aggregate by department and month", s7_aggregate, "all rows", _all("department", "month")),
    ("rank departments within each month, growth", s8_rank, "all rows", _all("month", "rank_in_month")),
]


def _plain(v):
    if isinstance(v, _Decimal):
        return str(v)
    if isinstance(v, (_datetime, _date)):
        return v.isoformat()
    return v


def _result(out):
    if isinstance(out, int):
        return out
    return [[_plain(v) for v in row] for row in out]


def run_step(k, df, ctx):
    """Adds step k to df and looks at the result; prints one RECIPE_RESULT line; returns the new DataFrame."""
    t0 = _time.time()
    _name, transform, _looks, look = STEPS[k - 1]
    out = transform(df, ctx)
    result = _result(look(out))
    print(
        "RECIPE_RESULT "
        + _json.dumps({"step": k, "result": result, "stepSeconds": _time.time() - t0, "at": _time.time()}),
        flush=True,
    )
    return out
