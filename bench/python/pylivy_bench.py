"""The PyPI `livy` client (pylivy) side of the client benchmark, timed inside Python.

usage:
  python pylivy_bench.py roundtrip URL SESSION_ID COUNT WARMUP
  python pylivy_bench.py parallel URL COUNT_PER_SESSION SESSION_ID [SESSION_ID ...]
Prints one JSON object: latencies in ms (roundtrip), wall seconds (parallel), HTTP requests sent.
pylivy is synchronous: the parallel run gives each session its own thread and LivySession, as a user would.
"""
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from livy import LivySession

_lock = threading.Lock()
_requests = 0
_orig = requests.Session.request


def _counting(self, *args, **kwargs):
    global _requests
    with _lock:
        _requests += 1
    return _orig(self, *args, **kwargs)


requests.Session.request = _counting

CODE = "1 + 1"


def check(output):
    if (output.text or "").strip() != "2":
        raise RuntimeError(f"unexpected output {output.text!r}")


def roundtrip(url, sid, count, warmup):
    global _requests
    s = LivySession(url, sid, echo=False)
    for _ in range(warmup):
        check(s.run(CODE))
    _requests = 0
    lat = []
    for _ in range(count):
        t = time.perf_counter()
        out = s.run(CODE)
        lat.append((time.perf_counter() - t) * 1000)
        check(out)
    return {"latenciesMs": lat, "requests": _requests, "completed": count}


def parallel(url, per_session, sids):
    global _requests

    def worker(sid):
        s = LivySession(url, sid, echo=False)
        for _ in range(per_session):
            check(s.run(CODE))
        return per_session

    _requests = 0
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(sids)) as ex:
        done = sum(ex.map(worker, sids))
    wall = time.perf_counter() - t
    return {"wallS": wall, "requests": _requests, "completed": done}


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "roundtrip":
        res = roundtrip(url, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        res = parallel(url, int(sys.argv[3]), [int(x) for x in sys.argv[4:]])
    print(json.dumps(res))
