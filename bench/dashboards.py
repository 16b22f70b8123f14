"""Times dashboard pages: the first view (its queries not cached yet), then warm: each page
is fetched WARMUP more times, then N times.

Usage: dashboards.py URL KEY N PAGE... ; KEY "-" fetches without a key, as the public does.
Prints a Markdown row per page. The time is the whole request on loopback (the server's time
plus well under a millisecond)."""
import statistics
import sys
import time
import urllib.request

url, key, n, pages = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
WARMUP = 5


def fetch(path):
    headers = {} if key == "-" else {"Authorization": "Bearer " + key}
    request = urllib.request.Request(url + path, headers=headers)
    started = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if b'class="refused"' in body:
        raise SystemExit(f"{path}: a panel was refused; the benchmark would not be honest")
    return elapsed, body.count(b'class="panel"')


who = "no key" if key == "-" else "admin key"
for page in pages:
    first, _ = fetch(page)
    for _ in range(WARMUP - 1):
        fetch(page)
    times, panels = [], 0
    for _ in range(n):
        elapsed, panels = fetch(page)
        times.append(elapsed)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    print(
        f"| `{page}`, {panels} panels, {who} | first view {first:.1f} ms; warm, {n} requests: "
        f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms |"
    )
