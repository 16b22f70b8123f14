#!/usr/bin/env bash
# End-to-end ingest: a generated `penduduk` CSV (5,000,000 rows, about 1 GB, 1% invalid) is
# validated against the canonical schema and committed as a Delta table by `simpul ingest`,
# and, on the same file in the same run, converted to Parquet by DuckDB without validation.
# Prints wall time, rows/s, MB/s and peak RSS for both.
# Usage: bench/ingest_vs_duckdb.sh [ROWS]   (needs: cargo build --release; pip install duckdb)
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
rows="${1:-5000000}"
simpul="$(release_simpul)"
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet duckdb
csv="$(generated_csv penduduk bench/generate_penduduk.py "$rows")"
mb=$(python3 -c "import os; print(round(os.path.getsize('$csv') / 1e6))")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Warm the page cache so that both tools read the file from memory.
cat "$csv" > /dev/null

SIMPUL_LOG=warn /usr/bin/time -f "%e %M" -o "$work/simpul.time" \
  "$simpul" --data-dir "$work/simpul" ingest "$csv" --dataset kependudukan.penduduk --schema penduduk > "$work/simpul.out"
/usr/bin/time -f "%e %M" -o "$work/duckdb.time" \
  python3 -c "import duckdb; duckdb.sql('SET enable_progress_bar = false'); duckdb.sql(\"COPY (SELECT * FROM read_csv('$csv')) TO '$work/penduduk.parquet' (FORMAT parquet)\")"

echo "| tool | what | rows | wall s | rows/s | MB/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for tool in simpul duckdb; do
  read -r seconds kb < "$work/$tool.time"
  what="CSV → validated (penduduk schema) → Delta commit"
  [ "$tool" = duckdb ] && what="CSV → Parquet, no validation"
  python3 -c "
rows, s, kb, mb = $rows, $seconds, $kb, $mb
print(f'| $tool | $what | {rows:,} | {s:.2f} | {rows / s:,.0f} | {mb / s:.0f} | {kb / 1024:.0f} |')"
done
grep -E "rows (read|written|rejected)" "$work/simpul.out" | sed 's/^ */    simpul: /'
