#!/usr/bin/env bash
# Bus benchmarks, on the release binary, against a fresh hub on loopback:
#   1. single-record publishes from CONNECTIONS concurrent clients (wrk), each acknowledged
#      only once its group commit is on disk: throughput and latency percentiles; then the
#      dataset's row count is checked against the acknowledged publishes;
#   2. bulk publishes of a 100,000-row body, as NDJSON and as Arrow IPC: rows/s;
#   3. a change-feed read of every row published in 2 (1,000,000 rows), NDJSON and Arrow: rows/s.
# Usage: bench/bus.sh [SECONDS] [CONNECTIONS]   (default 30 s, 50 connections).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
seconds="${1:-30}"
connections="${2:-50}"
simpul="$(release_simpul)"
data="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

SIMPUL_LOG=warn SIMPUL_DEMO_DATA=false "$simpul" serve --data-dir "$data" \
  --http-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 > "$data/serve.out" 2> "$data/serve.err" &
server=$!
for _ in $(seq 1 300); do grep -q '^http: ' "$data/serve.out" && break; sleep 0.1; done
url="$(sed -n 's/^http: //p' "$data/serve.out")"
key="$(sed -n 's/^admin key: //p' "$data/serve.out")"
[ -n "$url" ] && [ -n "$key" ] || { cat "$data/serve.err" >&2; exit 1; }

header="nik,no_kk,nama,tempat_lahir,tanggal_lahir,jenis_kelamin,alamat,rt,rw,kode_wilayah,telepon,status_hidup"
for dataset in bench.satuan bench.curah; do
  echo "$header" > "$data/empty.csv"
  "$simpul" --data-dir "$data" ingest "$data/empty.csv" --dataset "$dataset" --schema penduduk > /dev/null
done

rows_of() {
  curl -sf -H "Authorization: Bearer $key" -d "{\"sql\": \"select count(*) as n from $1\"}" "$url/api/v1/sql" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["rows"][0]["n"])'
}
versions_of() {
  curl -sf -H "Authorization: Bearer $key" "$url/api/v1/datasets/$1" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["dataset"]["current_version"])'
}

echo "| benchmark | result |"
echo "|---|---|"
before="$(versions_of bench.satuan)"
result="$(SIMPUL_KEY="$key" SIMPUL_DATASET=bench.satuan wrk -t"$(( connections < 2 ? connections : 2 ))" -c"$connections" -d"${seconds}s" --timeout 10s \
  -s bench/bus_publish.lua "$url" | grep '^RESULT')"
after="$(versions_of bench.satuan)"
landed="$(rows_of bench.satuan)"
python3 - "$result" "$landed" "$before" "$after" "$connections" <<'PY'
import sys
fields = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
landed, before, after, connections = (int(x) for x in sys.argv[2:6])
ok = int(fields["requests"]) - int(fields["failed"])
print(f"| single-record publishes, {connections} clients | {float(fields['rps']):,.0f} publishes/s; p50 {fields['p50_ms']} ms, p90 {fields['p90_ms']} ms, p99 {fields['p99_ms']} ms, max {fields['max_ms']} ms |")
print(f"| acknowledged / rows in the dataset / failed | {ok:,} / {landed:,} / {fields['failed']} |")
print(f"| Delta commits for them | {after - before:,} ({ok / max(after - before, 1):.0f} publishes per commit) |")
if landed < ok:
    sys.exit(f"{ok} publishes were acknowledged but only {landed} rows landed")
PY

python3 - "$data" <<'PY'
import json, sys
import pyarrow as pa, pyarrow.ipc as ipc
data = sys.argv[1]
rows = [{"nik": f"321401{1 + (i // 10000) % 28:02d}0590{i % 10000:04d}", "nama": f"Warga Curah {i}",
         "tanggal_lahir": "1990-05-15", "jenis_kelamin": "L",
         "kode_wilayah": "32.14.01.1001", "telepon": "081234567889"} for i in range(100_000)]
with open(f"{data}/bulk.ndjson", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
table = pa.Table.from_pylist(rows)
with ipc.new_stream(f"{data}/bulk.arrow", table.schema) as w:
    w.write_table(table)
PY

bulk() {
  local file="$1" type="$2" n="$3" start end
  start=$(date +%s.%N)
  curl -sf -o "$data/bulk.out" -H "Authorization: Bearer $key" -H "Content-Type: $type" \
    -H "Idempotency-Key: bulk-$n" --data-binary "@$file" "$url/api/v1/bus/datasets/bench.curah/records"
  end=$(date +%s.%N)
  python3 -c "import json; r = json.load(open('$data/bulk.out'))['receipt']; assert r['accepted'] == 100000, r" 
  echo "$start $end"
}
for kind in ndjson arrow; do
  case "$kind" in ndjson) type=application/x-ndjson ;; arrow) type=application/vnd.apache.arrow.stream ;; esac
  total=0
  for n in 1 2 3 4 5; do
    read -r start end < <(bulk "$data/bulk.$kind" "$type" "$kind-$n")
    total=$(python3 -c "print($total + $end - $start)")
  done
  mb=$(python3 -c "import os; print(round(os.path.getsize('$data/bulk.$kind') / 1e6, 1))")
  python3 -c "print(f'| bulk publish, 100,000-row $kind body ($mb MB), mean of 5 | {500000 / $total:,.0f} rows/s ({$total / 5:.2f} s per body) |')"
done

landed="$(rows_of bench.curah)"
for kind in ndjson arrow; do
  case "$kind" in ndjson) accept=application/x-ndjson ;; arrow) accept=application/vnd.apache.arrow.stream ;; esac
  start=$(date +%s.%N)
  curl -sf -o "$data/feed.$kind" -H "Authorization: Bearer $key" -H "Accept: $accept" \
    "$url/api/v1/bus/datasets/bench.curah/changes?since_version=0"
  end=$(date +%s.%N)
  served=$(python3 - "$data/feed.$kind" "$kind" <<'PY'
import sys
path, kind = sys.argv[1:3]
if kind == "ndjson":
    print(sum(1 for line in open(path) if not line.startswith('{"_seal"')))
else:
    import pyarrow.ipc as ipc
    print(ipc.open_stream(open(path, "rb")).read_all().num_rows)
PY
)
  [ "$served" = "$landed" ] || { echo "the $kind feed served $served rows of $landed" >&2; exit 1; }
  python3 -c "print(f'| change feed since version 0, {int($served):,} rows, $kind | {int($served) / ($end - $start):,.0f} rows/s ({$end - $start:.2f} s) |')"
done
