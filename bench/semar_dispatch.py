"""SEMAR dispatch decisions with 120 units and 100 waiting calls.

Against a running hub (URL, admin KEY): registers units up to 120, fills them all with
confirmed calls, queues 100 more, then lets crews finish jobs (WORKERS at a time). Every
back_in_service frees a unit and makes one decision for the queue's head; a new call is
confirmed each time, so the queue stays at 100. Prints the client-side latency of the
confirms and of the freeing steps, and the hub's own decision-time quantiles from /metrics.
Usage: python3 bench/semar_dispatch.py URL KEY [DECISIONS] [WORKERS]
"""

import json
import sys
import threading
import time
import urllib.request
import uuid

url, key = sys.argv[1], sys.argv[2]
decisions = int(sys.argv[3]) if len(sys.argv) > 3 else 500
workers = int(sys.argv[4]) if len(sys.argv) > 4 else 4
DESA = ["32.14.01.1001", "32.14.02.2001", "32.14.03.2005", "32.14.04.2001", "32.14.05.2001",
        "32.14.06.2001", "32.14.07.2001", "32.14.08.2001", "32.14.09.2001", "32.14.10.2001"]
STEPS = ["en_route", "on_scene", "at_patient", "left_scene", "at_facility", "handed_over"]


def call(method, path, body=None, idempotency=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + "/api/v1" + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + key)
    request.add_header("Content-Type", "application/json")
    if idempotency:
        request.add_header("Idempotency-Key", idempotency)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read()[:300]}")
    return answer, (time.perf_counter() - started) * 1000


def new_confirmed(n):
    body = {"channel": "phone", "caller_phone": f"+62812{n:08d}", "complaint": "bench", "kode_wilayah": DESA[n % len(DESA)]}
    created, _ = call("POST", "/semar/calls", body, str(uuid.uuid4()))
    confirmed, ms = call("POST", f"/semar/calls/{created['id']}/confirm", {})
    return confirmed, ms


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p * len(values) + 0.5)) - 1))]


fleet, _ = call("GET", "/semar/ambulances")
have = {u["kode"] for u in fleet["units"]}
for n in range(1, 121):
    kode = f"SEMAR-{n:02d}"
    if kode not in have:
        call("PUT", f"/semar/ambulances/{kode}", {"nomor_polisi": f"T {2000 + n} SM", "jenis": "gawat_darurat",
             "pangkalan_faskes": "PKM-321401", "di_aplikasi": n <= 40, "status": "tersedia",
             "lat": -6.45 - (n % 12) * 0.025, "lng": 107.30 + (n // 12) * 0.03})
counter = 0
assign_ms = []
queue_ms = []
for _ in range(120):
    counter += 1
    confirmed, ms = new_confirmed(counter)
    assert confirmed["dispatch"], confirmed
    assign_ms.append(ms)
for _ in range(100):
    counter += 1
    confirmed, ms = new_confirmed(counter)
    assert confirmed.get("queue_position"), confirmed
    queue_ms.append(ms)

lock = threading.Lock()
free_ms = []
done = [0]
claimed = set()


def crew():
    global counter
    while True:
        with lock:
            if done[0] >= decisions:
                return
            done[0] += 1
        fleet, _ = call("GET", "/semar/ambulances")
        with lock:
            busy = [u["dispatch"] for u in fleet["units"] if u["dispatch"] and u["dispatch"] not in claimed]
            dispatch = busy[(done[0] * 37) % len(busy)]
            claimed.add(dispatch)
        current, _ = call("GET", f"/semar/dispatches/{dispatch}")
        for step in STEPS:
            if step not in current["allowed_next"] and current["times"].get(step):
                continue
            body = {"event": step}
            if step == "left_scene":
                body["facility"] = "RS-BAYUASIH"
            current, _ = call("POST", f"/semar/dispatches/{dispatch}/events", body)
        _, ms = call("POST", f"/semar/dispatches/{dispatch}/events", {"event": "back_in_service"})
        with lock:
            free_ms.append(ms)
            counter += 1
            n = counter
        new_confirmed(n)


started = time.perf_counter()
threads = [threading.Thread(target=crew) for _ in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - started
fleet, _ = call("GET", "/semar/ambulances")
metrics_request = urllib.request.Request(url + "/metrics", headers={"Authorization": "Bearer " + key})
metrics = urllib.request.urlopen(metrics_request).read().decode()
buckets = {}
count = 0
total = 0.0
for line in metrics.splitlines():
    if line.startswith("simpul_semar_decision_seconds_bucket{"):
        le = line.split('le="')[1].split('"')[0]
        buckets[le] = int(float(line.split()[-1]))
    if line.startswith("simpul_semar_decision_seconds_count"):
        count = int(float(line.split()[-1]))
    if line.startswith("simpul_semar_decision_seconds_sum"):
        total = float(line.split()[-1])
share = {le: n / count * 100 for le, n in buckets.items()} if count else {}
print(f"| units / waiting calls at the end | {len(fleet['units'])} / {len(fleet['queue'])} |")
print(f"| confirm with a free unit (120 assignments), client | p50 {pct(assign_ms, .5):.1f} ms, p99 {pct(assign_ms, .99):.1f} ms |")
print(f"| confirm with every unit busy (100 queued), client | p50 {pct(queue_ms, .5):.1f} ms, p99 {pct(queue_ms, .99):.1f} ms |")
print(f"| back_in_service + the queue head's assignment, {workers} crews, client | p50 {pct(free_ms, .5):.1f} ms, p99 {pct(free_ms, .99):.1f} ms, max {max(free_ms):.1f} ms ({len(free_ms)} decisions in {elapsed:.1f} s) |")
p99_bound = next((float(le) * 1000 for le, pct_le in sorted(share.items(), key=lambda kv: float(kv[0]) if kv[0] != "+Inf" else 1e9) if le != "+Inf" and pct_le >= 99), None)
print(f"| decision inside the hub (rank + transaction), all {count} | mean {total / max(count, 1) * 1000:.2f} ms; {share.get('0.001', 0):.1f}% within 1 ms, {share.get('0.005', 0):.1f}% within 5 ms, {share.get('0.01', 0):.1f}% within 10 ms: p99 ≤ {p99_bound} ms |")
