"""Where a fresh Livy session's first statements spend their time (bench/RESULTS.md section 17.5).

usage: LIVY_URL=http://... python3 warmup_probe.py SET [KIND]

Opens one Livy session (KIND, default pyspark) through Livy's REST API, runs the statements of SET
(warmup_probe_sets.json: [label, code] pairs) one at a time and prints for each: Livy's own started ->
completed, the wall time from submission to result, the CPU seconds of the Spark driver's process tree
(the java process running RSCDriverBootstrapper started after the session was created, and its children:
the Python interpreter and workers), and, for pyspark, what the driver JVM did meanwhile (read with a
statement of its own after each one): classes loaded, JIT compilation time (the compilers' threads, summed),
and Janino compilations with their time (Spark's CodegenMetrics). Deletes the session at the end.
Run it alone: the driver is found as the only one started after the session's creation.
"""
import glob
import json
import os
import sys
import time
import urllib.request

URL = os.environ["LIVY_URL"].rstrip("/")
HZ = os.sysconf("SC_CLK_TCK")

METRICS = """_j = spark._jvm
_cm = _j.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
print(_j.java.lang.management.ManagementFactory.getClassLoadingMXBean().getTotalLoadedClassCount(), _j.java.lang.management.ManagementFactory.getCompilationMXBean().getTotalCompilationTime(), _cm.getCount(), sum(_cm.getSnapshot().getValues()))"""


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
        time.sleep(0.05)
        r = req("GET", f"/sessions/{sid}/statements/{r['id']}")
    return r


def tree_cpu(root):
    """CPU seconds (user + system) of root and all its descendants."""
    kids, cpu = {}, {}
    for f in glob.glob("/proc/[0-9]*/stat"):
        try:
            s = open(f).read()
        except OSError:
            continue
        pid, rest = int(f.split("/")[2]), s[s.rindex(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(pid)
        cpu[pid] = (int(rest[11]) + int(rest[12])) / HZ
    total, todo = 0.0, [root]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += kids.get(p, [])
    return total


def find_driver(since):
    boot = time.time() - float(open("/proc/uptime").read().split()[0])
    for f in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            c = open(f, "rb").read().split(b"\0")
            pid = int(f.split("/")[2])
            start = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]) / HZ
        except (OSError, ValueError):
            continue
        if c and c[0].endswith(b"java") and b"org.apache.livy.rsc.driver.RSCDriverBootstrapper" in c \
                and boot + start >= since - 1:
            return pid
    return None


def load():
    return open("/proc/loadavg").read().split()[0]


def main():
    stmts = json.load(open(os.path.join(os.path.dirname(__file__), "warmup_probe_sets.json")))[sys.argv[1]]
    kind = sys.argv[2] if len(sys.argv) > 2 else "pyspark"
    t0 = time.time()
    sid = req("POST", "/sessions", {"kind": kind, "name": f"warmup-probe-{int(t0)}"})["id"]
    try:
        while (st := req("GET", f"/sessions/{sid}")["state"]) != "idle":
            if st in ("dead", "error", "killed", "shutting_down"):
                raise SystemExit(f"session {st}")
            time.sleep(0.2)
        drv = find_driver(t0)
        print(f"session {sid} idle after {time.time() - t0:.1f} s, load {load()}, driver pid {drv}", flush=True)

        def metrics():
            if kind != "pyspark":
                return [0.0] * 4
            out = run(sid, METRICS)["output"]
            return [float(x) for x in out["data"]["text/plain"].split()]

        before = metrics()
        for label, code in stmts:
            l0, c0, w0 = load(), tree_cpu(drv) if drv else float("nan"), time.time()
            r = run(sid, code)
            wall, cpu = time.time() - w0, (tree_cpu(drv) if drv else float("nan")) - c0
            after = metrics()
            d = [b - a for a, b in zip(before, after)]
            before = after
            inside = (r["completed"] - r["started"]) / 1000
            out = r.get("output") or {}
            text = (out.get("data") or {}).get("text/plain", "") if out.get("status") == "ok" \
                else f"{out.get('ename')}: {out.get('evalue')}"
            print(f"{label:28s} livy {inside:6.2f} s  wall {wall:6.2f} s  cpu {cpu:6.2f} s | classes +{d[0]:5.0f}"
                  f"  jit {d[1] / 1000:5.2f} s  janino {d[2]:3.0f} classes {d[3] / 1000:5.2f} s"
                  f" | load {l0}->{load()}  {text.strip()[:50]!r}", flush=True)
    finally:
        req("DELETE", f"/sessions/{sid}")


if __name__ == "__main__":
    main()
