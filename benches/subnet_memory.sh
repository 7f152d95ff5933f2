#!/usr/bin/env bash
# benches/subnet_memory.sh: what `[swarm] prefer_same_subnet` costs in
# memory, whole daemon. For each shape, swarmd starts with the option off,
# then on (the order alternates by round), swarmd-load (UDP, loopback) makes
# every peer of the shape announce once, and the script reads swarmd's RSS
# (/proc/PID/status) before and after the load and its stored peers
# (swarmd_peers on /metrics). It prints bytes per peer off and on, and the
# ratio on/off within each round.
#
#   benches/subnet_memory.sh
#   SHAPES=racks ROUNDS=1 benches/subnet_memory.sh
#
# The shapes (one IPv4 address a client socket; --ipv4-clients-per-24 1 puts
# each socket in a /24 of its own):
#   standard  5M peers over 1M torrents, as `MODE=memory benches/compare.sh`
#             (64 sockets, all in 127.0.0.0/24; Zipf-skewed torrents, so the
#             popular ones are large swarms, of at most 64 addresses x 64
#             peers: max_peers_per_address)
#   racks     one torrent of 100k peers in racks of 40: 2 500 sockets, one
#             /24 each, 40 peers (ports) each
#   worst     one torrent of WORST_PEERS peers, each in a /24 of its own:
#             as many sockets of one peer each, so the open-file limit bounds
#             it (the script raises its soft limit to the hard one)
#
# Settings (environment):
#   SHAPES="standard racks worst"  ROUNDS=2  WORST_PEERS=14000 (a multiple of
#   500; 14 000 groups fill 85 % of a 16 384-slot table, 16 500 would fill
#   50 % of one twice as large)  RATE=20000 (announces/s offered
#   for racks and worst: a burst from thousands of sockets would overflow the
#   server's socket buffer)  TIMEOUT=900 (seconds a load may take at most)
#   SERVER_CPU=0 LOAD_CPU=1 PORT=47800 (first port; one new port per run)
#   OUT=DIR (logs; default a new /tmp directory)  BUILD=1 (0: skip the build)
#
# Every process the script starts is stopped when it exits, however it exits.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARMD=${SWARMD:-$TARGET_DIR/release/swarmd}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/swarmd-load}
SHAPES=${SHAPES:-"standard racks worst"}
ROUNDS=${ROUNDS:-2}
RATE=${RATE:-20000}
TIMEOUT=${TIMEOUT:-900}
WORST_PEERS=${WORST_PEERS:-14000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-47800}
BUILD=${BUILD:-1}
SERVERS=swarmd

die() { echo "subnet_memory.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive number"
[[ $RATE =~ ^[0-9]+$ && $RATE -ge 1 ]] || die "RATE must be a positive number"
[[ $WORST_PEERS =~ ^[0-9]+$ && $WORST_PEERS -ge 500 && $((WORST_PEERS % 500)) == 0 &&
    $WORST_PEERS -le 32000 ]] || die "WORST_PEERS must be a multiple of 500, 500 to 32 000"
for s in $SHAPES; do
    case $s in standard | racks | worst) ;; *) die "unknown shape $s (standard, racks, worst)" ;; esac
done
unset RUST_BACKTRACE

OUT=${OUT:-$(mktemp -d /tmp/swarmd-subnet-memory.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/swarmd-subnet-memory-work.XXXXXX)
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"
[[ -x $SWARMD ]] || die "no swarmd at $SWARMD"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# The load's options for a shape.
shape_load() {
    case $1 in
    standard) echo "--torrents 1000000 --peers 5000000 --sockets 64 --inflight 2" ;;
    racks) echo "--torrents 1 --peers 100000 --threads 5 --sockets 500 --inflight 1 --rate $RATE --ipv4-clients-per-24 1" ;;
    worst) echo "--torrents 1 --peers $WORST_PEERS --threads $((WORST_PEERS / 500)) --sockets 500 --inflight 1 --rate $RATE --ipv4-clients-per-24 1" ;;
    esac
}

# run SHAPE ON ROUND: one run; appends "shape round on peers rss0 rss1" to
# results.tsv.
run() {
    local shape=$1 on=$2 round=$3 port pid before after peers tag log i
    PORT=$((PORT + 1))
    port=$PORT
    tag=$shape-$([[ $on == true ]] && echo on || echo off)-$round
    log=$OUT/$tag
    # The stats endpoint is TCP on the same port number as the UDP tracker.
    cat >"$WORK/$tag.toml" <<EOF
[udp]
addresses = ["127.0.0.1:$port"]
[stats]
address = "127.0.0.1:$port"
[workers]
socket_workers = 1
swarm_workers = 1
[swarm]
prefer_same_subnet = $on
EOF
    taskset -c "$SERVER_CPU" "$SWARMD" --config "$WORK/$tag.toml" >"$log.swarmd.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if ! "$LOADGEN" ping --target "127.0.0.1:$port" --wait 60 2>>"$log.swarmd.log"; then
        note "swarmd did not come up on port $port; see $log.swarmd.log"
        stop_pid "$pid"
        return 1
    fi
    before=$(rss_kb "$pid")
    # shellcheck disable=SC2046
    taskset -c "$LOAD_CPU" "$LOADGEN" udp --target "127.0.0.1:$port" $(shape_load "$shape") \
        --peer-order once --scrape 0 --stop-prob 0 --complete-prob 0 \
        --duration "$TIMEOUT" --warmup 0 --quiet >"$log.load.log" 2>&1 || true
    # The peers the tracker stored (the gauge is sampled: poll until it moves
    # no more), then its RSS.
    peers=0
    for ((i = 0; i < 30; i++)); do
        local now
        now=$(curl -s "http://127.0.0.1:$port/metrics" |
            awk '/^swarmd_peers\{family="ipv4"\}/ {print $2}')
        [[ -n $now && $now == "$peers" && $now != 0 ]] && break
        peers=${now:-0}
        nap 1
    done
    after=$(rss_kb "$pid")
    stop_pid "$pid"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$round" "$on" "$peers" "$before" "$after" >>"$OUT/results.tsv"
    note "$(printf '%-8s round %s prefer_same_subnet=%-5s peers %9s  RSS %7.1f -> %7.1f MB  %6.1f bytes/peer' \
        "$shape" "$round" "$on" "$peers" "$(awk -v k="$before" 'BEGIN {print k / 1024}')" \
        "$(awk -v k="$after" 'BEGIN {print k / 1024}')" \
        "$(awk -v a="$after" -v b="$before" -v p="$peers" 'BEGIN {print (p > 0 ? (a - b) * 1024 / p : 0)}')")"
}

note "results and logs in $OUT"
printf 'shape\tround\tprefer_same_subnet\tpeers\trss0_kb\trss_kb\n' >"$OUT/results.tsv"
if [[ " $SHAPES " == *" worst "* ]]; then
    # A socket a peer, and a few files more.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= WORST_PEERS + 100)) ||
        die "worst needs $((WORST_PEERS + 100)) open files, the limit is $(ulimit -n): lower WORST_PEERS"
fi
warn_if_busy
for shape in $SHAPES; do
    for ((round = 1; round <= ROUNDS; round++)); do
        # Alternate which runs first, so neither always finds the machine fresher.
        if ((round % 2)); then order="false true"; else order="true false"; fi
        for on in $order; do run "$shape" "$on" "$round" || true; done
    done
done

echo
echo "prefer_same_subnet, memory: RSS growth over the peers swarmd stored, per round;"
echo "on/off is the ratio of bytes per peer within the round."
printf '%-9s %5s %10s %12s %12s %8s\n' shape round peers "off B/peer" "on B/peer" "on/off"
awk -F'\t' 'NR > 1 && $4 > 0 {
        k = $1 "\t" $2; b = ($6 - $5) * 1024 / $4
        if ($3 == "true") on[k] = b; else { off[k] = b; p[k] = $4 }
        if (!(k in seen)) { seen[k] = 1; keys[++n] = k }
    }
    END {
        for (i = 1; i <= n; i++) {
            k = keys[i]; split(k, f, "\t")
            if ((k in on) && (k in off) && off[k] > 0)
                printf "%-9s %5s %10d %12.1f %12.1f %8.2f\n", f[1], f[2], p[k], off[k], on[k], on[k] / off[k]
        }
    }' "$OUT/results.tsv"
