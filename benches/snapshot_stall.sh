#!/usr/bin/env bash
# benches/snapshot_stall.sh: what a client sees of periodic snapshots. swarmd
# starts on a state of 1M torrents / 5M IPv4 peers (made once by the snapshot
# bench, SWARMD_SNAPSHOT_KEEP), pinned to one core, and swarmd-load, pinned
# to the other, offers a fixed rate of announces and scrapes; each round runs
# once with periodic snapshots off and once with them every INTERVAL
# seconds, in alternating order, and prints responses/s, p99, p99.9 and max.
#
#   benches/snapshot_stall.sh
#   ROUNDS=1 DURATION=30 benches/snapshot_stall.sh
#
# Settings (environment):
#   ROUNDS=2 DURATION=60 WARMUP=10 RATE=100000 INTERVAL=5
#   SERVER_CPU=0 LOAD_CPU=1 PORT=47600
#   DIR=/tmp/swarmd-stall (the state file and the runs' logs)
#   BUILD=1 (0: use the release binaries already built)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2} DURATION=${DURATION:-60} WARMUP=${WARMUP:-10}
RATE=${RATE:-100000} INTERVAL=${INTERVAL:-5}
SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} PORT=${PORT:-47600}
DIR=${DIR:-/tmp/swarmd-stall} BUILD=${BUILD:-1}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$DIR"
if [ "$BUILD" = 1 ]; then
  cargo build --release -q -p swarmd --bin swarmd
  cargo build --release -q -p swarmd-load
fi
# Its peers' times run from when it was made: make it again when it is older
# than 20 minutes (a peer timeout is longer than the runs, not than that).
if [ ! -s "$DIR/state-5m.bin" ] || [ -n "$(find "$DIR/state-5m.bin" -mmin +20)" ]; then
  echo "making the 5M-peer state (the snapshot bench's build, no measurement)"
  SWARMD_SNAPSHOT_KEEP="$DIR/state-5m.bin" cargo bench -q --bench snapshot -- no-bench-matches >/dev/null
fi

run() { # run NAME INTERVAL
  local name=$1 interval=$2 port=$PORT
  PORT=$((PORT + 1))
  cp "$DIR/state-5m.bin" "$DIR/$name.bin"
  cat > "$DIR/$name.toml" <<T
[udp]
addresses = ["127.0.0.1:$port"]
[http]
addresses = []
[stats]
address = ""
[swarm]
max_peers_per_address = 100000000
[state]
path = "$DIR/$name.bin"
interval = $interval
[log]
level = "debug"
T
  taskset -c "$SERVER_CPU" "$TARGET/release/swarmd" --config "$DIR/$name.toml" 2> "$DIR/$name.log" &
  local pid=$!
  "$TARGET/release/swarmd-load" ping --target "127.0.0.1:$port" --wait 60 >/dev/null
  taskset -c "$LOAD_CPU" "$TARGET/release/swarmd-load" --target "127.0.0.1:$port" \
    --torrents 1000000 --peers 5000000 --rate "$RATE" --duration "$DURATION" \
    --warmup "$WARMUP" --quiet --json "$DIR/$name.json" > "$DIR/$name.load" 2>&1 || true
  kill -TERM "$pid"; wait "$pid" || true
  local loaded written
  loaded=$(grep -oE '[0-9]+ torrents and [0-9]+ peers' "$DIR/$name.log" | head -1)
  # Periodic snapshots log at debug level, the one on stop at info.
  written=$(grep -c 'state: wrote' "$DIR/$name.log" || true)
  python3 - "$DIR/$name.json" "$name" "$loaded" "$written" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
l = j["latency_us"]
print(f"{sys.argv[2]:>6}  responses/s {j['responses_per_sec']:.0f}  p99 {l['p99']} us  "
      f"p99.9 {l['p999']} us  max {l['max']} us  timeouts {j['timeouts']}  "
      f"(loaded {sys.argv[3]}; snapshots written {sys.argv[4]})")
PY
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  if [ $((r % 2)) = 1 ]; then run "off-$r" 0; run "on-$r" "$INTERVAL"
  else run "on-$r" "$INTERVAL"; run "off-$r" 0; fi
done
