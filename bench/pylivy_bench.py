"""The PyPI `livy` client (pylivy) on the same Livy sessions, driven by bench/run.ts.

Argument: a JSON object {url, sessions: [ids], trivial: N, batch: N, batchCode}. Prints one JSON object.
pylivy is synchronous, so the batch runs one thread per session, each running its share in order, which
is how pylivy users get parallelism. Requests are counted with a response hook on pylivy's requests.Session.
"""

import json
import sys
import threading
import time

import requests
from livy import LivySession

args = json.loads(sys.argv[1])
lock = threading.Lock()
count = [0]


def counted_session():
    s = requests.Session()

    def hook(response, *a, **k):
        with lock:
            count[0] += 1

    s.hooks["response"].append(hook)
    return s


def session(sid):
    return LivySession(args["url"], sid, requests_session=counted_session(), echo=False, check=True)


first = session(args["sessions"][0])
for _ in range(3):
    first.run("1 + 1")

count[0] = 0
times = []
for _ in range(args["trivial"]):
    t = time.perf_counter()
    out = first.run("1 + 1")
    times.append((time.perf_counter() - t) * 1000)
    assert out.text == "2", out
trivial_requests = count[0]

count[0] = 0
per = args["batch"] // len(args["sessions"])
errors = []


def worker(sid):
    s = session(sid)
    try:
        for _ in range(per):
            s.run(args["batchCode"])
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        errors.append(repr(e))


threads = [threading.Thread(target=worker, args=(sid,)) for sid in args["sessions"]]
t = time.perf_counter()
for th in threads:
    th.start()
for th in threads:
    th.join()
wall = (time.perf_counter() - t) * 1000

print(
    json.dumps(
        {
            "trivialMs": times,
            "trivialRequests": trivial_requests,
            "batchWallMs": wall,
            "batchStatements": per * len(args["sessions"]),
            "batchRequests": count[0],
            "errors": errors,
        }
    )
)
