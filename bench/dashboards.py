"""Times dashboard pages, warm: each page is fetched WARMUP times, then N times.

Usage: dashboards.py URL KEY N PAGE... ; prints a Markdown row per page. The time is the
whole request on loopback (the server's time plus well under a millisecond)."""
import statistics
import sys
import time
import urllib.request

url, key, n, pages = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
WARMUP = 5


def fetch(path):
    request = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + key})
    started = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if b'class="refused"' in body:
        raise SystemExit(f"{path}: a panel was refused; the benchmark would not be honest")
    return elapsed, body.count(b'class="panel"')


for page in pages:
    for _ in range(WARMUP):
        fetch(page)
    times, panels = [], 0
    for _ in range(n):
        elapsed, panels = fetch(page)
        times.append(elapsed)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    print(
        f"| `{page}`, {panels} panels, warm, {n} requests | median {statistics.median(times):.1f} ms, "
        f"p95 {p95:.1f} ms, max {times[-1]:.1f} ms |"
    )
