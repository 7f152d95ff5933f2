#!/usr/bin/env bash
# benches/cluster.sh: what the cluster ([cluster], NATS) costs, on a 2-core
# machine, all on loopback. Three figures, each from swarmd-load runs with
# the tracker pinned to SERVER_CPU and the load to LOAD_CPU:
#
#   1. one node, cluster off vs on (a nats-server on LOAD_CPU): responses
#      per server-CPU-second (swarmd's own utime + stime), ROUNDS pairs;
#   2. the cost of applying remote changes: node A (cluster on) under the
#      load, node B (cluster on, no clients) applying what A publishes:
#      changes B applied per B-CPU-second, against A's responses per
#      A-CPU-second;
#   3. replication lag at RATE announces/s offered to A: B's histogram of
#      publish-to-apply lag (p50, p99), read from its /metrics;
#   4. warm-up: A gets WARM_PEERS peers (each announces once), then B
#      starts and asks for them: B's log says how long it took.
#
#   benches/cluster.sh                    ROUNDS=3 DURATION=20 RATE=100000
#
# Settings: ROUNDS DURATION WARMUP RATE WARM_PEERS SERVER_CPU LOAD_CPU PORT
# OUT BUILD; PARTS="onoff lag warm" picks the parts (1 and 2 are "onoff").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARMD=${SWARMD:-$TARGET_DIR/release/swarmd}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/swarmd-load}
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-20} WARMUP=${WARMUP:-3} RATE=${RATE:-100000}
WARM_PEERS=${WARM_PEERS:-1000000} PARTS=${PARTS:-onoff lag warm}
SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} PORT=${PORT:-47500} BUILD=${BUILD:-1}
SERVERS="swarmd"
WORK=$(mktemp -d /tmp/swarmd-cluster-bench.XXXXXX)
OUT=${OUT:-/tmp/swarmd-cluster-bench-out.$$}
mkdir -p "$OUT"
note() { echo "cluster.sh: $*" >&2; }
die() { note "$*"; exit 1; }
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"
command -v nats-server >/dev/null || die "nats-server is missing (apt-get install nats-server)"
HZ=$(getconf CLK_TCK)
head -c 32 /dev/urandom | base64 >"$WORK/secret"

NATS_PORT=$((PORT + 100))
taskset -c "$LOAD_CPU" nats-server -a 127.0.0.1 -p "$NATS_PORT" -l "$WORK/nats.log" &
PIDS+=($!)

# node NAME UDP_PORT STATS_PORT CLUSTER(0|1): starts swarmd, prints its pid.
node() {
    local cfg=$WORK/$1.toml
    cat >"$cfg" <<EOF
[udp]
addresses = ["127.0.0.1:$2"]
[http]
addresses = []
[stats]
address = "127.0.0.1:$3"
[workers]
socket_workers = 1
swarm_workers = 1
EOF
    # The warm-up's A must keep every peer the load makes from its few
    # client addresses.
    [[ $1 == warm-* ]] && printf '[swarm]\nmax_peers_per_address = 0\n' >>"$cfg"
    if [[ $4 == 1 ]]; then
        cat >>"$cfg" <<EOF
[cluster]
url = "nats://127.0.0.1:$NATS_PORT"
node = "$1"
secret_file = "$WORK/secret"
EOF
    fi
    taskset -c "$SERVER_CPU" "$SWARMD" --config "$cfg" >"$WORK/$1.log" 2>&1 &
    echo $!
    "$LOADGEN" ping --target "127.0.0.1:$2" --wait 30 >/dev/null
}

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# load PORT TAG [extra args]: a run against 127.0.0.1:PORT.
load() {
    local port=$1 tag=$2
    shift 2
    taskset -c "$LOAD_CPU" "$LOADGEN" --target "127.0.0.1:$port" --duration "$DURATION" \
        --warmup "$WARMUP" --quiet "$@" >"$OUT/$tag.log" 2>&1
}

if [[ " $PARTS " == *" onoff "* ]]; then
printf 'round\tcase\tresponses_per_s\tserver_cpu_s\tresponses_per_cpu_s\tapplied\tapplier_cpu_s\tapplied_per_cpu_s\n' \
    >"$OUT/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in off on; do
        p=$((PORT + r * 10))
        [[ $mode == on ]] && p=$((p + 1))
        a=$(node "a$r$mode" "$p" $((p + 200)) $([[ $mode == on ]] && echo 1 || echo 0))
        PIDS+=("$a")
        b=
        if [[ $mode == on ]]; then
            b=$(node "b$r" $((p + 2)) $((p + 202)) 1)
            PIDS+=("$b")
        fi
        c0=$(cpu_ticks "$a")
        [[ -n $b ]] && b0=$(cpu_ticks "$b") && ap0=$(metric $((p + 202)) swarmd_cluster_changes_applied_total)
        load "$p" "round$r-$mode"
        c1=$(cpu_ticks "$a")
        rps=$(kv "$OUT/round$r-$mode.log" responses_per_sec)
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
        per=$(awk -v r="$rps" -v d="$DURATION" -v c="$cpu" 'BEGIN {printf "%.0f", r * d / c}')
        applied=- bcpu=- bper=-
        if [[ -n $b ]]; then
            sleep 1
            b1=$(cpu_ticks "$b")
            ap1=$(metric $((p + 202)) swarmd_cluster_changes_applied_total)
            applied=$((ap1 - ap0))
            bcpu=$(awk -v a="$b0" -v b="$b1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
            bper=$(awk -v n="$applied" -v c="$bcpu" 'BEGIN {printf "%.0f", n / c}')
            stop_pid "$b"
        fi
        stop_pid "$a"
        note "round $r cluster $mode: $rps responses/s, $cpu server CPU-s, $per per CPU-s; B applied $applied in $bcpu CPU-s ($bper per CPU-s)"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$rps" "$cpu" "$per" "$applied" "$bcpu" "$bper" \
            >>"$OUT/results.tsv"
    done
done

fi

# Lag at RATE announces/s: A under the paced load, B applying.
if [[ " $PARTS " == *" lag "* ]]; then
p=$((PORT + 90))
a=$(node lag-a "$p" $((p + 200)) 1)
b=$(node lag-b $((p + 2)) $((p + 202)) 1)
PIDS+=("$a" "$b")
load "$p" lag --rate "$RATE" --scrape 0
curl -s "http://127.0.0.1:$((p + 202))/metrics" | grep '^swarmd_cluster_lag_seconds' >"$OUT/lag.txt"
curl -s "http://127.0.0.1:$((p + 202))/stats" >"$OUT/lag-stats.json"
note "lag at $RATE/s offered: $(kv "$OUT/lag.log" responses_per_sec) responses/s; B's lag:"
python3 - "$OUT/lag-stats.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["cluster"]
print(f"  p50 <= {c['lag_p50_seconds']} s, p99 <= {c['lag_p99_seconds']} s, applied {c['changes_applied']}, dropped {c['changes_dropped']}")
EOF
cat "$OUT/lag.txt"
stop_pid "$a"
stop_pid "$b"
fi

# Warm-up of WARM_PEERS peers (5 a torrent): A loaded, then B started.
if [[ " $PARTS " == *" warm "* ]]; then
p=$((PORT + 80))
a=$(node warm-a "$p" $((p + 200)) 1)
PIDS+=("$a")
taskset -c "$LOAD_CPU" "$LOADGEN" --target "127.0.0.1:$p" --peers "$WARM_PEERS" \
    --torrents $((WARM_PEERS / 5)) --peer-order once --requests "$WARM_PEERS" --scrape 0 \
    --stop-prob 0 --seeder-prob 0.5 --duration 600 --warmup 0 --quiet >"$OUT/warm-load.log" 2>&1
held=$(metric $((p + 200)) 'swarmd_peers{family="ipv4"}')
note "A holds $held peers"
t0=$(date +%s.%N)
b=$(node warm-b $((p + 2)) $((p + 202)) 1)
PIDS+=("$b")
# Until B holds as many (each look is an HTTP request: ~1 ms). At least:
# B's ready probe (swarmd-load ping) announced a peer of its own.
for ((i = 0; i < 60000; i++)); do
    (($(metric $((p + 202)) 'swarmd_peers{family="ipv4"}') >= held)) && break
done
t1=$(date +%s.%N)
note "B holds $(metric $((p + 202)) 'swarmd_peers{family="ipv4"}') peers, \
$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s after its start (bound and ready included)"
note "$(grep -h "warm" "$WORK/warm-b.log" "$WORK/warm-a.log" | sed 's/^.*cluster: //')"
note "RSS: A $(awk '/VmRSS/ {print $2}' /proc/"$a"/status) kB, B $(awk '/VmRSS/ {print $2}' /proc/"$b"/status) kB"
stop_pid "$a"
stop_pid "$b"
fi
if [[ -s $OUT/results.tsv ]]; then
    echo "results: $OUT/results.tsv"
    column -t "$OUT/results.tsv"
fi
