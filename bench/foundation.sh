#!/usr/bin/env bash
# Foundation benchmarks, on the release binary:
#   1. `simpul ingest` of a generated CSV: wall time, rows/s and peak RSS;
#   2. streaming `select *` of that table over HTTP in each format: wall time, rows/s, MB/s,
#      and the server's peak RSS (a fresh server per format, so each peak is its own).
# Usage: bench/foundation.sh [ROWS]   (default 5,000,000). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
rows="${1:-5000000}"
simpul="$(release_simpul)"
work="bench/data"
csv="$(generated_csv observations bench/generate_observations.py "$rows")"
data="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

csv_mb=$(python3 -c "import os; print(round(os.path.getsize('$csv') / 1e6))")
/usr/bin/time -f "%e %M" -o "$work/ingest.time" \
  "$simpul" --data-dir "$data" ingest "$csv" --dataset stats.observasi > "$work/ingest.out"
read -r seconds peak_kb < "$work/ingest.time"
grep -q "rows written:  $rows\$" "$work/ingest.out" || { cat "$work/ingest.out" >&2; echo "expected $rows rows written" >&2; exit 1; }
echo "| step | rows | wall s | rows/s | MB/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
python3 - "$rows" "$seconds" "$peak_kb" "$csv_mb" <<'PY'
import sys
rows, s, kb, mb = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"| ingest CSV ({mb} MB) | {rows:,} | {s:.2f} | {rows / s:,.0f} | {mb / s:.0f} | {kb / 1024:.0f} |")
PY

start_server() {
  SIMPUL_QUERY_ROW_LIMIT=1000000000 SIMPUL_QUERY_TIMEOUT_SECS=3600 SIMPUL_LOG=warn \
    "$simpul" serve --data-dir "$data" --http-listen 127.0.0.1:0 > "$data/serve.out" 2> "$data/serve.err" &
  server=$!
  for _ in $(seq 1 200); do grep -q '^http: ' "$data/serve.out" && return; sleep 0.1; done
  cat "$data/serve.err" >&2; exit 1
}

key=""
for format in csv json arrow parquet; do
  start_server
  [ -z "$key" ] && key="$(grep '^admin key: ' "$data/serve.out" | cut -d' ' -f3)"
  url="$(grep '^http: ' "$data/serve.out" | cut -d' ' -f2)"
  result="$(curl -s -o "$data/result.$format" -w '%{time_total} %{size_download} %{http_code}' \
    -H "Authorization: Bearer $key" \
    -d '{"sql": "select * from stats.observasi"}' "$url/api/v1/sql?format=$format")"
  peak_kb="$(awk '/VmHWM/ {print $2}' "/proc/$server/status")"
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  python3 - "$format" "$rows" $result "$peak_kb" "$data/result.$format" <<'PY'
import json, sys
fmt, rows, s, size, code, kb, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7]
assert code == "200", code
# Count what came back, independently of the server's own figures.
if fmt == "csv":
    with open(path, "rb") as f:
        got = sum(1 for _ in f) - 1
elif fmt == "json":
    with open(path, "rb") as f:
        got = len(json.load(f)["rows"])
elif fmt == "arrow":
    import pyarrow.ipc
    got = pyarrow.ipc.open_stream(path).read_all().num_rows
else:
    import pyarrow.parquet
    got = pyarrow.parquet.ParquetFile(path).metadata.num_rows
assert got == rows, f"{fmt}: {got:,} rows came back, expected {rows:,}"
print(f"| stream `select *` as {fmt} ({size / 1e6:,.0f} MB) | {rows:,} | {s:.2f} | {rows / s:,.0f} | {size / 1e6 / s:,.0f} | {kb / 1024:.0f} |")
PY
  rm -f "$data/result.$format"
done
