#!/usr/bin/env bash
# benches/soak.sh: a long run of swarmd under the load generator, to show
# that memory stays flat and nothing goes wrong. Loopback only, bounded.
#
#   DURATION=600 RATE=50000 benches/soak.sh
#
# Prints RSS every SAMPLE seconds, then the load generator's summary and
# swarmd's RSS at the start of the measured part, at the end and at most.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-600}
RATE=${RATE:-50000}
SAMPLE=${SAMPLE:-30}
PORT=${PORT:-46900}
TORRENTS=${TORRENTS:-1000000}
PEERS=${PEERS:-2000000}
BUILD=${BUILD:-1}

if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p swarmd -p swarmd-load)
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/swarmd.toml" <<TOML
[udp]
addresses = ["127.0.0.1:$PORT"]
[http]
addresses = []
[stats]
address = "127.0.0.1:$((PORT + 1))"
[swarm]
# Short timeouts so that peers expire and are cleaned during the run.
peer_timeout = 120
cleaning_interval = 10
[announce]
interval = 60
min_interval = 30
TOML
taskset -c 0 "$TARGET_DIR/release/swarmd" --config "$work/swarmd.toml" 2> "$work/swarmd.log" &
spid=$!
pids+=("$spid")
"$TARGET_DIR/release/swarmd-load" ping --target "127.0.0.1:$PORT" --wait 10 > /dev/null

rss() { awk '/VmRSS/ {print $2}' "/proc/$spid/status"; }
taskset -c 1 "$TARGET_DIR/release/swarmd-load" --target "127.0.0.1:$PORT" \
  --duration "$DURATION" --warmup 0 --rate "$RATE" --torrents "$TORRENTS" --peers "$PEERS" \
  --quiet > "$work/load.out" 2>&1 &
lpid=$!
pids+=("$lpid")

# Torrents and peers from the stats endpoint, to read RSS against.
counts() {
  python3 -c 'import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1]))["swarm"]
print(d["torrents"], d["peers_v4"] + d["peers_v6"])' "http://127.0.0.1:$((PORT + 1))/stats" 2>/dev/null || echo "- -"
}
echo "seconds rss_kib torrents peers"
start_rss=$(rss)
max_rss=$start_rss
t=0
while kill -0 "$lpid" 2>/dev/null; do
  sleep "$SAMPLE"
  t=$((t + SAMPLE))
  kill -0 "$lpid" 2>/dev/null || break
  r=$(rss)
  [ "$r" -gt "$max_rss" ] && max_rss=$r
  echo "$t $r $(counts)"
done
end_rss=$(rss)
wait "$lpid" || true
cat "$work/load.out"
echo "swarmd rss_kib: before_load=$start_rss end=$end_rss max=$max_rss; torrents and peers at the end: $(counts)"
kill -0 "$spid" || { echo "swarmd died" >&2; cat "$work/swarmd.log" >&2; exit 1; }
