#!/usr/bin/env bash
# SQL endpoints under load, against DuckDB on the same Parquet files.
#   - latency p50/p99 of `select 1` and of a point lookup on the ROWS-row table, over HTTP
#     and pgwire, at 1 and 32 concurrent clients (tests/examples/sql_client.rs);
#   - streaming throughput of the whole table over HTTP Arrow, pgwire and Flight SQL, and DuckDB reading
#     the table's Parquet files locally;
#   - aggregations by kecamatan through pgwire (psycopg) and DuckDB, 11 runs each, the two
#     alternating, median.
# Usage: bench/sql_vs_duckdb.sh [ROWS]
#   (needs: cargo build --release -p simpul-hub && cargo build --release -p simpul-tests
#    --example sql_client; pip install duckdb 'psycopg[binary]')
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
rows="${1:-10000000}"
seconds="${SECONDS_PER_POINT:-10}"
parts="${PARTS:-latency stream aggregate}"   # a subset runs only those sections
simpul="$(release_simpul)"
client="$(dirname "$simpul")/examples/sql_client"
if [[ " $parts " == *" latency "* || " $parts " == *" stream "* ]]; then
  [ -x "$client" ] || { echo "build it first: cargo build --release -p simpul-tests --example sql_client" >&2; exit 1; }
fi
python3 -c "import duckdb, psycopg" 2>/dev/null || python3 -m pip install --quiet duckdb 'psycopg[binary]'
work="$(mktemp -d)"
trap 'kill "${serve_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

(cd bench && python3 generate_sintetis.py "$rows" "$work/sintetis.parquet")
SIMPUL_LOG=warn SIMPUL_DEMO_DATA=false "$simpul" --data-dir "$work/hub" ingest "$work/sintetis.parquet" \
  --dataset stats.sintetis | grep "rows written"

SIMPUL_LOG=warn SIMPUL_DEMO_DATA=false SIMPUL_QUERY_ROW_LIMIT=100000000 SIMPUL_QUERY_TIMEOUT_SECS=900 \
  SIMPUL_QUERY_MAX_CONCURRENT=64 SIMPUL_QUERY_MAX_QUEUED=256 SIMPUL_SCHEDULER_ENABLED=false \
  "$simpul" serve --data-dir "$work/hub" --http-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 \
  --flight-listen 127.0.0.1:0 > "$work/serve.out" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q '^http: ' "$work/serve.out" && break; sleep 0.1; done
key="$(sed -n 's/^admin key: //p' "$work/serve.out")"
http="$(sed -n 's/^http: //p' "$work/serve.out")"
pg="$(sed -n 's/^postgres: postgresql:\/\///p' "$work/serve.out")"
pg_url="postgresql://admin:$key@$pg/simpul"
flight="http://$(sed -n 's/^flight: grpc:\/\///p' "$work/serve.out")"
files="$work/hub/lake/stats/sintetis/*.parquet"

if [[ " $parts " == *" latency "* ]]; then
echo "## latency ($seconds s per point)"
lookup='select id, kode_wilayah, nilai from stats.sintetis where id = $1'
for sql in "select 1" "$lookup"; do
  for clients in 1 32; do
    ID_MAX="$rows" "$client" latency http "$http" "$key" "$clients" "$seconds" "$sql" | sed "s|^|[$sql] |"
    ID_MAX="$rows" "$client" latency pg "$pg_url" - "$clients" "$seconds" "$sql" | sed "s|^|[$sql] |"
  done
done

fi

if [[ " $parts " == *" stream "* ]]; then
echo "## streaming select * ($rows rows)"
"$client" stream http-arrow "$http" "$key" "select * from stats.sintetis"
"$client" stream pg "$pg_url" - "select * from stats.sintetis"
"$client" stream flight "$flight" "$key" "select * from stats.sintetis"
python3 - "$files" <<'PY'
import sys, time, duckdb
con = duckdb.connect()
start = time.perf_counter()
reader = con.sql(f"select * from read_parquet('{sys.argv[1]}')").to_arrow_reader(1 << 16)
rows = nbytes = 0
for batch in reader:
    rows += batch.num_rows
    nbytes += batch.nbytes
s = time.perf_counter() - start
print(f"duckdb-local rows={rows} seconds={s:.2f} rows_per_s={rows / s:.0f} mb_per_s={nbytes / 1e6 / s:.0f}")
PY

fi

if [[ " $parts " == *" aggregate "* ]]; then
echo "## aggregations (median of 11, alternating)"
python3 - "$pg_url" "$files" <<'PY'
import statistics, sys, time
import duckdb, psycopg

pg_url, files = sys.argv[1], sys.argv[2]
queries = {
    "count and sum by kecamatan": "select kode_kecamatan, count(*) as n, sum(nilai) as total, avg(nilai) as rata "
    "from {t} group by kode_kecamatan order by kode_kecamatan",
    "by kecamatan and year": "select kode_kecamatan, tahun, count(*) as n, max(nilai) as tertinggi "
    "from {t} group by kode_kecamatan, tahun order by kode_kecamatan, tahun",
    "by desa, filtered": "select kode_wilayah, count(*) as n, avg(nilai) as rata from {t} "
    "where tahun >= 2020 and nilai > 5000 group by kode_wilayah order by n desc, kode_wilayah limit 10",
}

RUNS = 11


def interleaved(first, second):
    """Runs both RUNS times, alternating, so that drift in the machine's speed reaches both;
    returns each one's median time and last result."""
    times, results = ([], []), [None, None]
    for _ in range(RUNS):
        for i, run in enumerate((first, second)):
            start = time.perf_counter()
            results[i] = run()
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), results[0], statistics.median(times[1]), results[1]


con = duckdb.connect()
with psycopg.connect(pg_url, autocommit=True) as pg:
    print("| query | simpul pgwire s | duckdb s | ratio |")
    print("|---|---|---|---|")
    for name, sql in queries.items():
        simpul_s, simpul_rows, duck_s, duck_rows = interleaved(
            lambda: pg.execute(sql.format(t="stats.sintetis")).fetchall(),
            lambda: con.execute(sql.format(t=f"read_parquet('{files}')")).fetchall(),
        )
        assert len(simpul_rows) == len(duck_rows), (name, len(simpul_rows), len(duck_rows))
        assert [r[:2] for r in simpul_rows] == [tuple(r[:2]) for r in duck_rows], name
        print(f"| {name} | {simpul_s:.3f} | {duck_s:.3f} | {simpul_s / duck_s:.2f}x |")
PY
fi
