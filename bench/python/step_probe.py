"""Where a warm session's recipe step spends its time (bench/RESULTS.md section 18; issue 14 item 6).

usage: LIVY_URL=http://... python3 step_probe.py ORDERS_CSV PRODUCTS_CSV WARMUP_FILE [--reps N]
                                                 [--conf KEY=VALUE ...] [--driver-memory 3g]

Does in one Livy session what `npm run bench -- interactive` does on the session path (through Livy's REST
API: recipe.py's text as a statement, the warm-up in WARMUP_FILE, the sample loaded and cached once, then
`df_k = run_step(k, df_<k-1>, ctx)` for k = 1..8, N times), with the session's Spark conf given by --conf
(on top of the server's spark-defaults.conf), and prints for every step what the driver did meanwhile, read
from Spark's own status stores in the same statement, around the unchanged run_step call:
  - the step's wall time inside Python (run_step's stepSeconds) and Livy's started -> completed;
  - the Spark jobs it ran, their stages (run / skipped) and tasks, the time inside jobs (the union of the
    jobs' submission -> completion) and the time before the first job (analysis, optimization, planning:
    the driver alone), the sum of the tasks' executor run time and CPU time;
  - the SQL executions (one per action, plus AQE's broadcast/subquery work inside them);
  - Janino compilations and their time (Spark's CodegenMetrics): a step whose plan Spark has compiled
    before reuses the generated classes.
Deletes the session at the end. Recipe code is never changed: the probe only wraps the statement.
"""
import argparse
import json
import os
import time
import urllib.request

URL = os.environ["LIVY_URL"].rstrip("/")
HERE = os.path.dirname(os.path.abspath(__file__))

# Defined in the session once: snapshot before the step, measure after it (py4j calls into the status
# stores; they run after run_step has printed its own time, so they do not inflate stepSeconds).
PROBE = r'''
import time as _pt
def _jl(seq):
    # the status stores answer Scala Seqs: as a java.util.List, which py4j iterates
    return spark._jvm.scala.collection.JavaConverters.seqAsJavaList(seq)
def _opt_ms(o):
    return o.get().getTime() if o.isDefined() else None
def _pb():
    _st = spark.sparkContext._jsc.sc().statusStore()
    _ct = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    _jobs = [j.jobId() for j in _jl(_st.jobsList(None))]
    _sql = [e.executionId() for e in _jl(spark._jsparkSession.sharedState().statusStore().executionsList())]
    return {"job": max(_jobs or [-1]), "sql": max(_sql or [-1]),
            "cg": _ct.getCount(), "cgms": sum(_ct.getSnapshot().getValues()), "t": _pt.time()}
def _pe(b, k):
    _st = spark.sparkContext._jsc.sc().statusStore()
    _ct = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    jobs = [j for j in _jl(_st.jobsList(None)) if j.jobId() > b["job"]]
    iv = sorted((_opt_ms(j.submissionTime()), _opt_ms(j.completionTime())) for j in jobs)
    inside, end = 0, None
    for s, e in iv:
        if s is None or e is None:
            continue
        if end is None or s > end:
            inside += e - s; end = e
        elif e > end:
            inside += e - end; end = e
    stages = []
    for _sid in sorted({int(i) for j in jobs for i in _jl(j.stageIds())}):
        try:
            stages.append(_st.lastStageAttempt(_sid))
        except Exception:
            pass  # never submitted (skipped: its shuffle output was there)
    run = [s for s in stages if str(s.status()) == "COMPLETE"]
    sqls = [e for e in _jl(spark._jsparkSession.sharedState().statusStore().executionsList())
            if e.executionId() > b["sql"]]
    out = {"step": k, "jobs": len(jobs), "stagesRun": len(run), "stagesSkipped": len({int(i) for j in jobs for i in _jl(j.stageIds())}) - len(run),
           "tasks": sum(s.numTasks() for s in run), "inJobsMs": inside,
           "beforeFirstJobMs": (iv[0][0] - b["t"] * 1000) if iv and iv[0][0] else None,
           "taskRunMs": sum(s.executorRunTime() for s in run),
           "taskCpuMs": round(sum(s.executorCpuTime() for s in run) / 1e6),
           "stageMs": [(_opt_ms(s.completionTime()) or 0) - (_opt_ms(s.submissionTime()) or 0) for s in run],
           "sqlExecutions": len(sqls),
           "janino": _ct.getCount() - b["cg"], "janinoMs": sum(_ct.getSnapshot().getValues()) - b["cgms"]}
    print("PROBE " + _json.dumps(out), flush=True)
'''


def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(URL + path, data=data, method=method,
                               headers={"Content-Type": "application/json", "X-Requested-By": "probe"})
    with urllib.request.urlopen(r, timeout=60) as resp:
        t = resp.read()
        return json.loads(t) if t else None


def run(sid, code):
    r = req("POST", f"/sessions/{sid}/statements", {"code": code})
    while r["state"] not in ("available", "error", "cancelled"):
        time.sleep(0.02)
        r = req("GET", f"/sessions/{sid}/statements/{r['id']}")
    out = r.get("output") or {}
    if out.get("status") != "ok":
        raise SystemExit(f"statement failed: {out.get('ename')}: {out.get('evalue')}\n{code[:300]}")
    return r, out["data"]["text/plain"]


def line(text, tag):
    return json.loads(next(l for l in text.splitlines() if l.startswith(tag + " "))[len(tag) + 1:])


def load():
    return open("/proc/loadavg").read().split()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("orders")
    ap.add_argument("products")
    ap.add_argument("warmup")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conf", action="append", default=[])
    ap.add_argument("--driver-memory", default="3g")
    ap.add_argument("--variant", action="append", default=[],
                    help="LABEL:k=v,k=v: runtime SQL conf set in the same session (spark.conf.set), then the"
                         " reps again; each variant starts from the session's own values")
    a = ap.parse_args()
    conf = dict(c.split("=", 1) for c in a.conf)
    t0 = time.time()
    body = {"kind": "pyspark", "name": f"step-probe-{int(t0)}", "driverMemory": a.driver_memory}
    if conf:
        body["conf"] = conf
    sid = req("POST", "/sessions", body)["id"]
    try:
        while (st := req("GET", f"/sessions/{sid}")["state"]) != "idle":
            if st in ("dead", "error", "killed", "shutting_down"):
                raise SystemExit(f"session {st}")
            time.sleep(0.2)
        print(f"conf {conf or '(server defaults)'}; session {sid} idle after {time.time() - t0:.1f} s,"
              f" load {load()}", flush=True)
        recipe = open(os.path.join(HERE, "recipe.py")).read()
        run(sid, recipe + "\n" + PROBE)
        w0 = time.time()
        run(sid, open(a.warmup).read())
        print(f"warm-up {time.time() - w0:.1f} s, load {load()}", flush=True)
        l0 = time.time()
        run(sid, "\n".join([
            f"raw, ctx = load_sample(spark, {a.orders!r}, {a.products!r})",
            "raw = raw.cache()",
            "ctx['products'] = ctx['products'].cache()",
            "df_0 = raw",
            "print(raw.count(), ctx['products'].count())",
        ]))
        print(f"sample loaded and cached in {time.time() - l0:.1f} s", flush=True)
        rows = []

        def reps(variant):
            print(f"-- {variant}, load {load()}", flush=True)
            print("rep step  livy_s  step_s  before1stJob_s  inJobs_s  jobs stages(skip) tasks  taskRun_s"
                  "  taskCpu_s  sql  janino(ms)  stage_ms", flush=True)
            for rep in range(a.reps):
                for k in range(1, 9):
                    r, text = run(sid, f"_p = _pb()\ndf_{k} = run_step({k}, df_{k - 1}, ctx)\n_pe(_p, {k})")
                    res, p = line(text, "RECIPE_RESULT"), line(text, "PROBE")
                    livy = (r["completed"] - r["started"]) / 1000
                    rows.append({"variant": variant, "rep": rep, "livyS": livy, "stepS": res["stepSeconds"], **p})
                    b1 = p["beforeFirstJobMs"]
                    print(f"{rep + 1:3d} {k:4d}  {livy:6.3f}  {res['stepSeconds']:6.3f}"
                          f"  {'' if b1 is None else f'{b1 / 1000:14.3f}'}  {p['inJobsMs'] / 1000:8.3f}"
                          f"  {p['jobs']:4d} {p['stagesRun']:3d}({p['stagesSkipped']:2d})  {p['tasks']:5d}"
                          f"  {p['taskRunMs'] / 1000:9.3f}  {p['taskCpuMs'] / 1000:9.3f}  {p['sqlExecutions']:3d}"
                          f"  {p['janino']:3d}/{p['janinoMs']:5.0f}  {p['stageMs']}", flush=True)
        reps("session conf")
        for v in a.variant:
            label, kvs = v.split(":", 1)
            pairs = [kv.split("=", 1) for kv in kvs.split(",")]
            keys = [k for k, _ in pairs]
            _, was = run(sid, "print(_json.dumps([spark.conf.get(k, None) for k in " + repr(keys) + "]))")
            old = json.loads(was.strip().splitlines()[-1])
            run(sid, "\n".join(f"spark.conf.set({k!r}, {v!r})" for k, v in pairs))
            reps(label + " " + kvs)
            run(sid, "\n".join(f"spark.conf.set({k!r}, {o!r})" if o is not None else f"spark.conf.unset({k!r})"
                               for k, o in zip(keys, old)))
        _, mem = run(sid, "\n".join([
            "_mx = spark._jvm.java.lang.management.ManagementFactory",
            "_ms = [p for p in _mx.getMemoryPoolMXBeans() if p.getName() == 'Metaspace']",
            "_cg = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics",
            "print(_json.dumps({'metaspaceMB': round(_ms[0].getUsage().getUsed() / 2**20, 1) if _ms else None,"
            " 'classesLoaded': _mx.getClassLoadingMXBean().getLoadedClassCount(),"
            " 'generatedClasses': _cg.METRIC_COMPILATION_TIME().getCount(),"
            " 'meanClassBytecode': round(_cg.METRIC_GENERATED_CLASS_BYTECODE_SIZE().getSnapshot().getMean()),"
            " 'heapUsedMB': round(_mx.getMemoryMXBean().getHeapMemoryUsage().getUsed() / 2**20, 1)}))",
        ]))
        print(f"driver JVM at the end: {mem.strip().splitlines()[-1]}", flush=True)
        last = [r for r in rows if r["rep"] == a.reps - 1]
        print(f"last rep: sum of steps {sum(r['stepS'] for r in last):.3f} s, load {load()}", flush=True)
        print("PROBE_ROWS " + json.dumps({"conf": conf, "rows": rows}), flush=True)
    finally:
        req("DELETE", f"/sessions/{sid}")


if __name__ == "__main__":
    main()
