# Shared by the benchmark scripts: sourced from the repository root.

# The release `simpul` binary (or SIMPUL_BIN, for an A/B against another build), or a clear
# error if it is not built.
release_simpul() {
  local target
  if [ -n "${SIMPUL_BIN:-}" ]; then
    [ -x "$SIMPUL_BIN" ] || { echo "SIMPUL_BIN=$SIMPUL_BIN is not an executable" >&2; exit 1; }
    echo "$SIMPUL_BIN"
    return
  fi
  target="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}"
  [ -x "$target/release/simpul" ] || { echo "build it first: cargo build --release" >&2; exit 1; }
  echo "$target/release/simpul"
}

# Generates bench/data/NAME_ROWS.csv with GENERATOR (fixed seed) unless it exists; a run cut
# short leaves no file behind. Prints the path.
generated_csv() {
  local name="$1" generator="$2" rows="$3" csv
  mkdir -p bench/data
  csv="bench/data/${name}_${rows}.csv"
  [ -f "$csv" ] || { python3 "$generator" "$rows" "$csv.partial" >&2 && mv "$csv.partial" "$csv"; }
  echo "$csv"
}

# Starts the release `simpul serve` on a fresh data directory in "$data" (HTTP only, on a free
# port) and sets server, url and key. The caller's EXIT trap kills "$server".
start_release_hub() {
  SIMPUL_LOG=warn "$simpul" serve --data-dir "$data" \
    --http-listen 127.0.0.1:0 --pg-listen '' --flight-listen '' > "$data/serve.out" 2> "$data/serve.err" &
  server=$!
  for _ in $(seq 1 600); do grep -q '^http: ' "$data/serve.out" && break; sleep 0.1; done
  url="$(sed -n 's/^http: //p' "$data/serve.out")"
  key="$(sed -n 's/^admin key: //p' "$data/serve.out")"
  [ -n "$url" ] && [ -n "$key" ] || { cat "$data/serve.err" >&2; exit 1; }
}
