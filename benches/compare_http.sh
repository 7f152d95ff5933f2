#!/usr/bin/env bash
# benches/compare_http.sh: whole-daemon comparison of swarmd's HTTP tracker
# with aquatic_http and opentracker's HTTP side, meant for a 2-core machine:
# the server is pinned to one core, the load generator to the other, servers
# alternate within each round, and the table shows medians over the rounds.
# Two load generators drive the servers over keep-alive connections:
# `swarmd-load http` (checks every answer, gives latency) and
# aquatic_http_load_test (the peer's own). Issue 4's goal is swarmd at 60k
# responses per server-CPU-second or more on one core.
#
#   benches/compare_http.sh                     5 rounds of 30 s
#   ROUNDS=1 DURATION=15 benches/compare_http.sh
#
# Settings (environment):
#   ROUNDS=5  DURATION=30  SUMMARIZE=25   seconds per run, and the last seconds
#                                         measured (the first ones warm up)
#   SERVERS="swarmd aquatic_http opentracker"
#   LOADS="swarmd-load aquatic"
#   CONNECTIONS=1024  keep-alive connections of either load generator (the
#                     figure issue 4 quotes aquatic_http's ~21k/s with)
#   PIPELINE=1        requests in flight per connection (swarmd-load only;
#                     aquatic_http_load_test always waits for each answer)
#   TORRENTS=1000000 PEERS=2000000 NUMWANT=30   swarmd-load's population
#   SERVER_CPU=0 LOAD_CPU=1  PORT=48000 (first port; one new port per run)
#   OUT=DIR   where logs and results.tsv go (default: a new /tmp directory)
#   BUILD=1   build swarmd and swarmd-load (release) first; 0 to skip
#
# The references, if missing, are skipped with a note:
#   cargo install aquatic_http                (without --locked, as for
#                                              aquatic_udp: its lockfile no
#                                              longer builds)
#   cargo install aquatic_http_load_test      (run with enable_tls = false)
#   apt-get install -y opentracker            (Debian's is whitelist-only: the
#                                              script whitelists swarmd-load's
#                                              hashes. aquatic_http_load_test
#                                              draws random ones each run, so
#                                              that pair is skipped. It has no
#                                              keep-alive: every request is a
#                                              new connection.)
#
# Every process the script starts is stopped when it exits, however it exits.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARMD=${SWARMD:-$TARGET_DIR/release/swarmd}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/swarmd-load}

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-30}
SUMMARIZE=${SUMMARIZE:-$((DURATION * 5 / 6))}
SERVERS=${SERVERS:-"swarmd aquatic_http opentracker"}
LOADS=${LOADS:-"swarmd-load aquatic"}
CONNECTIONS=${CONNECTIONS:-1024}
PIPELINE=${PIPELINE:-1}
TORRENTS=${TORRENTS:-1000000}
PEERS=${PEERS:-2000000}
NUMWANT=${NUMWANT:-30}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-48000}
BUILD=${BUILD:-1}
WARMUP=$((DURATION - SUMMARIZE))
CLK_TCK=$(getconf CLK_TCK)

die() { echo "compare_http.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive number"
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 && $DURATION -le 3600 ]] ||
    die "DURATION must be between 2 and 3600"
[[ $SUMMARIZE =~ ^[0-9]+$ && $SUMMARIZE -ge 1 && $SUMMARIZE -lt $DURATION ]] ||
    die "SUMMARIZE must be at least 1 and less than DURATION"
[[ $CONNECTIONS =~ ^[0-9]+$ && $CONNECTIONS -ge 1 ]] || die "CONNECTIONS must be a positive number"
if [[ " $LOADS " == *" aquatic "* ]] && ((DURATION < 10 || DURATION % 5 != 0)); then
    die "aquatic_http_load_test reports every 5 s: DURATION must be a multiple of 5, at least 10"
fi

# anyhow captures a backtrace for every error when this is set, which slows
# Rust servers down (see shared/BENCHMARKING.md).
unset RUST_BACKTRACE

OUT=${OUT:-$(mktemp -d /tmp/swarmd-compare-http.XXXXXX)}
mkdir -p "$OUT/logs"
WORK=$(mktemp -d /tmp/swarmd-compare-http-work.XXXXXX)
# opentracker drops to `nobody` inside its root directory: it must be readable.
chmod 755 "$WORK"

# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"

available_server() {
    case $1 in
    swarmd) [[ -x $SWARMD ]] ;;
    aquatic_http) command -v aquatic_http >/dev/null ;;
    opentracker) command -v opentracker >/dev/null ;;
    *) die "unknown server $1 (swarmd, aquatic_http, opentracker)" ;;
    esac
}

available_load() {
    case $1 in
    swarmd-load) return 0 ;;
    aquatic) command -v aquatic_http_load_test >/dev/null ;;
    *) die "unknown load $1 (swarmd-load, aquatic)" ;;
    esac
}

servers=()
for s in $SERVERS; do
    if available_server "$s"; then servers+=("$s"); else note "skipping $s: not installed/built"; fi
done
loads=()
for l in $LOADS; do
    if available_load "$l"; then loads+=("$l"); else note "skipping load $l: not installed"; fi
done
((${#servers[@]} > 0)) || die "no server to measure"
((${#loads[@]} > 0)) || die "no load generator"

# opentracker (Debian) only tracks whitelisted hashes: list swarmd-load's (it
# derives them from a fixed seed). The readiness check announces the very last
# one, so a tracker still loading its whitelist is not taken for ready.
if [[ " ${servers[*]} " == *" opentracker "* ]]; then
    note "writing opentracker's whitelist"
    "$LOADGEN" hashes --torrents "$TORRENTS" >"$WORK/whitelist.txt"
    chmod 644 "$WORK/whitelist.txt"
fi

warn_if_busy

# ------------------------------------------------------------------- servers


SERVER_PID=
SERVER_PORT=

# start_server NAME: starts NAME on a new port pinned to SERVER_CPU and waits
# until it answers an HTTP announce. Sets SERVER_PID and SERVER_PORT.
start_server() {
    local name=$1
    PORT=$((PORT + 1))
    SERVER_PORT=$PORT
    local addr=127.0.0.1:$PORT log=$OUT/logs/$name-$PORT.log
    case $name in
    swarmd)
        cat >"$WORK/swarmd-$PORT.toml" <<EOF
[udp]
addresses = []
[http]
addresses = ["$addr"]
max_connections = $((CONNECTIONS + 1024))
[stats]
address = ""
[workers]
socket_workers = 1
swarm_workers = 1
EOF
        taskset -c "$SERVER_CPU" "$SWARMD" --config "$WORK/swarmd-$PORT.toml" >"$log" 2>&1 &
        ;;
    aquatic_http)
        aquatic_http -p |
            sed -e "s/^address = .*/address = \"$addr\"/" \
                -e 's/^socket_workers = .*/socket_workers = 1/' \
                -e 's/^swarm_workers = .*/swarm_workers = 1/' \
                -e 's/^enable_tls = .*/enable_tls = false/' \
                -e 's/^keep_alive = .*/keep_alive = true/' \
                -e 's/^log_level = .*/log_level = "error"/' >"$WORK/aquatic_http-$PORT.toml"
        grep -q "^address = \"$addr\"" "$WORK/aquatic_http-$PORT.toml" ||
            die "could not set aquatic_http's address in its printed config"
        taskset -c "$SERVER_CPU" aquatic_http -c "$WORK/aquatic_http-$PORT.toml" >"$log" 2>&1 &
        ;;
    opentracker)
        cat >"$WORK/opentracker-$PORT.conf" <<EOF
listen.tcp $addr
listen.udp $addr
listen.udp.workers 1
tracker.rootdir $WORK
access.whitelist whitelist.txt
EOF
        taskset -c "$SERVER_CPU" opentracker -f "$WORK/opentracker-$PORT.conf" >"$log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    if ! "$LOADGEN" ping --http --target "$addr" --torrent $((TORRENTS - 1)) --wait 60 2>>"$log"; then
        note "$name did not come up on $addr; its log:"
        tail -n 20 "$log" >&2 || true
        stop_pid "$SERVER_PID"
        return 1
    fi
}

# ------------------------------------------------------------------ the runs

RESULTS=$OUT/results.tsv

# run_load SERVER LOAD ROUND: drives the running server for DURATION seconds
# and appends one line to results.tsv.
run_load() {
    local server=$1 load=$2 round=$3
    local addr=127.0.0.1:$SERVER_PORT tag=$server-$load-$round
    local log=$OUT/logs/$tag.log
    local rps p99="-" errors="-" invalid="-" reconnects="-" load_pid c0 c1 rc=0 i
    local window=$SUMMARIZE
    case $load in
    swarmd-load)
        taskset -c "$LOAD_CPU" "$LOADGEN" http --target "$addr" --connections "$CONNECTIONS" \
            --pipeline "$PIPELINE" --torrents "$TORRENTS" --peers "$PEERS" --numwant "$NUMWANT" \
            --duration "$DURATION" --warmup "$WARMUP" --quiet --json "$OUT/logs/$tag.json" \
            >"$log" 2>&1 &
        load_pid=$!
        PIDS+=("$load_pid")
        nap "$WARMUP"
        c0=$(cpu_ticks "$SERVER_PID")
        nap "$window"
        c1=$(cpu_ticks "$SERVER_PID")
        ;;
    aquatic)
        # Its mix made like swarmd-load's: announce:scrape 100:1, 75 %
        # seeders, as many torrents. It opens one connection each
        # connection_creation_interval_ms (0 would open them one after the
        # other, each waiting for the last to end), so 1 ms opens 1024 in
        # about a second.
        aquatic_http_load_test -p |
            sed -e "s/^server_address = .*/server_address = \"$addr\"/" \
                -e 's/^num_workers = .*/num_workers = 1/' \
                -e "s/^num_connections = .*/num_connections = $CONNECTIONS/" \
                -e 's/^connection_creation_interval_ms = .*/connection_creation_interval_ms = 1/' \
                -e "s/^duration = .*/duration = $DURATION/" \
                -e 's/^keep_alive = .*/keep_alive = true/' \
                -e 's/^enable_tls = .*/enable_tls = false/' \
                -e "s/^number_of_torrents = .*/number_of_torrents = $TORRENTS/" \
                -e 's/^peer_seeder_probability = .*/peer_seeder_probability = 0.75/' \
                -e 's/^weight_announce = .*/weight_announce = 100/' \
                -e 's/^weight_scrape = .*/weight_scrape = 1/' \
                >"$WORK/aquatic-load-$SERVER_PORT.toml"
        grep -q '^enable_tls = false' "$WORK/aquatic-load-$SERVER_PORT.toml" ||
            die "could not turn TLS off in aquatic_http_load_test's printed config"
        taskset -c "$LOAD_CPU" aquatic_http_load_test -c "$WORK/aquatic-load-$SERVER_PORT.toml" \
            >"$log" 2>&1 &
        load_pid=$!
        PIDS+=("$load_pid")
        # It prints its rate every 5 s. The first report covers the opening
        # of the connections: measure from it to the last one, and average
        # the reports in between.
        local reports=$((DURATION / 5))
        for ((i = 0; i < 400; i++)); do
            grep -q "^Responses in" "$log" 2>/dev/null && break
            kill -0 "$load_pid" 2>/dev/null || break
            sleep 0.05
        done
        c0=$(cpu_ticks "$SERVER_PID")
        local seen
        for ((i = 0; i < 20 * (DURATION + 10); i++)); do
            seen=$(grep -c "^Responses in" "$log" 2>/dev/null || true)
            ((${seen:-0} >= reports)) && break
            kill -0 "$load_pid" 2>/dev/null || break
            sleep 0.05
        done
        c1=$(cpu_ticks "$SERVER_PID")
        window=$(((reports - 1) * 5))
        ;;
    esac
    wait "$load_pid" || rc=$?
    case $load in
    swarmd-load)
        rps=$(kv "$log" responses_per_sec)
        p99=$(kv "$log" p99_us)
        errors=$(kv "$log" errors)
        invalid=$(kv "$log" invalid)
        reconnects=$(kv "$log" reconnects)
        ;;
    aquatic)
        # Its "responses" include failure answers; those are counted apart.
        rps=$(awk '/^Responses in:/ {n++; if (n > 1) {s += $3; k++}}
            END {if (k) printf "%.0f", s / k}' "$log")
        # Failures per second in each averaged report, times 5 s: a count.
        errors=$(awk '/^  - Failure responses:/ {n++; if (n > 1) s += $4}
            END {printf "%.0f", s * 5}' "$log")
        ;;
    esac
    if [[ -z $rps || $rps == 0 ]]; then
        note "$tag: no figure (exit $rc); see $log"
        return 0
    fi
    local cpu per_cpu
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
    per_cpu=$(awk -v r="$rps" -v s="$window" -v c="$cpu" \
        'BEGIN {if (c > 0) printf "%.0f", r * s / c; else print "-"}')
    printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$load" "$rps" "$cpu" \
        "$per_cpu" "$p99" "$errors" "$invalid" "$reconnects" >>"$RESULTS"
    note "$(printf '%-12s %-12s round %s: %8.0f responses/s, server CPU %5s s, %s per CPU-s, p99 %s us, errors %s, invalid %s, reconnects %s' \
        "$server" "$load" "$round" "$rps" "$cpu" "$per_cpu" "$p99" "$errors" "$invalid" "$reconnects")"
}

median() {
    sort -g | awk '$1 != "-" {a[n++] = $1} END {
        if (n == 0) print "-"; else if (n % 2) print a[(n - 1) / 2]; else print (a[n / 2 - 1] + a[n / 2]) / 2 }'
}

printf 'round\tserver\tload\tresponses_per_s\tserver_cpu_s\tresponses_per_cpu_s\tp99_us\terrors\tinvalid\treconnects\n' >"$RESULTS"
note "results and logs in $OUT"
n=${#servers[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order each round so no server always runs first.
    for ((i = 0; i < n; i++)); do
        server=${servers[$(((i + round - 1) % n))]}
        for load in "${loads[@]}"; do
            if [[ $server == opentracker && $load == aquatic ]]; then
                ((round == 1)) && note "skipping opentracker with aquatic_http_load_test: its random hashes are not in the whitelist"
                continue
            fi
            start_server "$server" || continue
            run_load "$server" "$load" "$round"
            stop_pid "$SERVER_PID"
        done
    done
done

col() { awk -F'\t' -v s="$1" -v l="$2" -v c="$3" 'NR > 1 && $2 == s && $3 == l {print $c}' "$RESULTS" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0 && a != "-") printf "%.2f", a / b; else print "-"}'; }

echo
echo "HTTP throughput: medians of $ROUNDS round(s) of ${DURATION} s (last ${SUMMARIZE} s measured for"
echo "swarmd-load, the 5-s reports after the first for aquatic_http_load_test); $CONNECTIONS keep-alive"
echo "connections (opentracker: one per request), pipeline $PIPELINE; server on CPU $SERVER_CPU, load on"
echo "CPU $LOAD_CPU; ratios against swarmd with the same load. Goal (issue 4): swarmd >= 60000 per CPU-s."
printf '%-12s %-12s %12s %14s %9s %8s %8s %10s %10s\n' server load "responses/s" "per server-s" \
    "p99 us" errors invalid "x swarmd" "x sw /cpu"
for load in "${loads[@]}"; do
    ref_rps=$(col swarmd "$load" 4)
    ref_per=$(col swarmd "$load" 6)
    for server in "${servers[@]}"; do
        rps=$(col "$server" "$load" 4)
        [[ $rps == "-" ]] && continue
        per=$(col "$server" "$load" 6)
        printf '%-12s %-12s %12.0f %14s %9s %8s %8s %10s %10s\n' "$server" "$load" "$rps" "$per" \
            "$(col "$server" "$load" 7)" "$(col "$server" "$load" 8)" "$(col "$server" "$load" 9)" \
            "$(ratio "$rps" "$ref_rps")" "$(ratio "$per" "$ref_per")"
    done
done
