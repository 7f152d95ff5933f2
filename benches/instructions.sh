#!/usr/bin/env bash
# benches/instructions.sh: instructions the server executes for a fixed load,
# counted by valgrind's callgrind: repeatable on a busy or shared machine,
# where times and rates are not. Runs each build in turn under callgrind,
# drives it with the same swarmd-load run (fixed seed, rate and request
# count, one loopback address per socket), stops it, and prints the total
# instructions and the ratio to the first build.
#
#   benches/instructions.sh                          target/release/swarmd
#   BINS="/path/old/swarmd target/release/swarmd" benches/instructions.sh
#
# Settings: REQUESTS=150000 RATE=4000 TORRENTS=10000 PEERS=100000
#   EXTRA_TOML (appended to each server's config; e.g. to lift
#   [swarm] max_peers_per_address, which the load's four client addresses
#   reach in the popular torrents, when the builds compared differ there)
# Needs: valgrind, a release swarmd-load (cargo build --release -p swarmd-load).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/swarmd-load}
BINS=${BINS:-$TARGET_DIR/release/swarmd}
REQUESTS=${REQUESTS:-150000} RATE=${RATE:-4000}
TORRENTS=${TORRENTS:-10000} PEERS=${PEERS:-100000}
EXTRA_TOML=${EXTRA_TOML:-}
PORT=${PORT:-47900}
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed" >&2; exit 1; }
[[ -x $LOADGEN ]] || { echo "instructions.sh: no load generator at $LOADGEN" >&2; exit 1; }
WORK=$(mktemp -d /tmp/swarmd-instructions.XXXXXX)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$WORK"' EXIT
first=
printf '%-50s %15s %12s %8s\n' build instructions per-request ratio
for bin in $BINS; do
    PORT=$((PORT + 1))
    printf '[udp]\naddresses = ["127.0.0.1:%s"]\n[http]\naddresses = []\n[stats]\naddress = ""\n%s\n' \
        "$PORT" "$EXTRA_TOML" >"$WORK/tracker.toml"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$bin" --config "$WORK/tracker.toml" \
        2>"$WORK/valgrind.log" &
    pid=$!
    "$LOADGEN" ping --target "127.0.0.1:$PORT" --wait 60 >/dev/null
    "$LOADGEN" --target "127.0.0.1:$PORT" --torrents "$TORRENTS" --peers "$PEERS" --rate "$RATE" \
        --requests "$REQUESTS" --duration 3600 --timeout-ms 5000 --seed 1 --quiet >"$WORK/load.log" 2>&1
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    ir=$(awk '/^totals:/ {print $2}' "$WORK/cg.out")
    first=${first:-$ir}
    printf '%-50s %15s %12s %8s\n' "$bin" "$ir" "$((ir / REQUESTS))" \
        "$(awk -v a="$ir" -v b="$first" 'BEGIN {printf "%.3f", a / b}')"
    grep -oE 'peers_per_announce=[0-9.]+|timeouts=[0-9]+' "$WORK/load.log" | tr '\n' ' '
    echo
done
