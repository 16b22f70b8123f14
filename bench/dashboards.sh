#!/usr/bin/env bash
# Dashboard rendering, on the release binary, against a fresh hub with the demo data plus
# 100,000 generated residents (kependudukan.penduduk), SEMAR dispatches
# (bench/semar_dispatch.py) and 200 complaints, so every panel has rows.
# bench/dashboards.py times each page's first view, then N warm fetches (result cache filled);
# the public Ringkasan is fetched without a key.
# Usage: bench/dashboards.sh [N]   (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
n="${1:-50}"
simpul="$(release_simpul)"
data="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

start_release_hub

csv="$(generated_csv penduduk bench/generate_penduduk.py 100000)"
"$simpul" --data-dir "$data" ingest "$csv" --dataset kependudukan.penduduk --schema penduduk > /dev/null
python3 bench/semar_dispatch.py "$url" "$key" 200 4 > /dev/null
for i in $(seq 1 200); do
  curl -sf -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"kind\": \"complaint\", \"channel\": \"web\", \"description\": \"Jalan rusak nomor $i\", \"nama\": \"Warga $i\"}" \
    "$url/api/v1/complaints"
done

echo "| benchmark | result |"
echo "|---|---|"
# The public first: its first view is the population aggregate's first run.
python3 bench/dashboards.py "$url" - "$n" /dashboards/ringkasan "/dashboards/ringkasan?kecamatan=32.14.01"
python3 bench/dashboards.py "$url" "$key" "$n" \
  /dashboards/kesehatan_hub /dashboards/ringkasan /dashboards/semar /dashboards/pengaduan
