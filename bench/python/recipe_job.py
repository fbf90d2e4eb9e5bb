"""The recipe up to step K as the batch job a data engineer would spark-submit without an interactive session:
start, read the raw sample, apply steps 1..K, look at step K's result (the same look as in the session), stop.

usage: spark-submit [options] recipe_job.py ORDERS_CSV PRODUCTS_CSV K
Prints `JOB_TIMES {...}` (epoch seconds: Python started, SparkSession ready) and the RECIPE_RESULT line of
recipe.run_step, so that the benchmark can split the wall time into start-up, work and shutdown.
"""
import json
import sys
import time

_python_started = time.time()

from pyspark.sql import SparkSession  # noqa: E402

import recipe  # noqa: E402

orders_csv, products_csv, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
spark = SparkSession.builder.appName(f"bench-recipe-step{k}").getOrCreate()
_session_ready = time.time()
print("JOB_TIMES " + json.dumps({"pythonStarted": _python_started, "sessionReady": _session_ready}), flush=True)

df, ctx = recipe.load_sample(spark, orders_csv, products_csv)
for i in range(1, k):
    df = recipe.STEPS[i - 1][1](df, ctx)
recipe.run_step(k, df, ctx)
spark.stop()
