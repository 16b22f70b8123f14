#!/usr/bin/env bash
# SEMAR benchmarks, on the release binary, against a fresh hub with the demo fleet:
#   1. GPS pings from 120 units (wrk, CONNECTIONS clients, SECONDS): throughput and latency;
#   2. dispatch decisions with 120 units and 100 waiting calls (bench/semar_dispatch.py).
# Usage: bench/semar.sh [SECONDS] [CONNECTIONS] [DECISIONS]   (default 30 s, 16, 500).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
seconds="${1:-30}"
connections="${2:-16}"
decisions="${3:-500}"
simpul="$(release_simpul)"
data="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

start_release_hub

echo "| benchmark | result |"
echo "|---|---|"
# The 120 units first, so pings reach all of them.
python3 bench/semar_dispatch.py "$url" "$key" "$decisions" 4
result="$(SIMPUL_KEY="$key" wrk -t2 -c"$connections" -d"${seconds}s" --timeout 10s \
  -s bench/semar_pings.lua "$url" | grep '^RESULT')"
python3 - "$result" "$connections" <<'PY'
import sys
fields = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
print(f"| GPS pings, {sys.argv[2]} clients, 120 units | {float(fields['rps']):,.0f} pings/s; p50 {fields['p50_ms']} ms, p90 {fields['p90_ms']} ms, p99 {fields['p99_ms']} ms, max {fields['max_ms']} ms; {fields['failed']} failed of {int(fields['requests']):,} |")
PY
