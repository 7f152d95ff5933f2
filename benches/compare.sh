#!/usr/bin/env bash
# benches/compare.sh: whole-daemon comparison of swarmd's UDP tracker with
# aquatic_udp, opentracker and the do-nothing responder (the machine's
# ceiling, answering announces with no peers; sized_responder is the same
# answering with as many made-up peers as swarmd answers with), meant for a
# 2-core machine: the server is pinned to one core, the load generator to
# the other, servers alternate within each round, and the tables show
# medians over the rounds, then ratios paired within each round. Two load
# generators drive every server: swarmd-load (also gives latency) and
# aquatic_udp_load_test (the peer's own).
#
#   benches/compare.sh                    throughput, 5 rounds of 30 s
#   ROUNDS=1 DURATION=10 benches/compare.sh
#   MODE=memory benches/compare.sh        RSS after 1M torrents / 5M peers
#   MODE=latency benches/compare.sh       p50/p99/p99.9 at a fixed offered rate
#   MODE=all benches/compare.sh           all three
#
# Settings (environment):
#   ROUNDS=5  DURATION=30  SUMMARIZE=25   seconds per run, and the last seconds
#                                         averaged (the first ones warm up)
#   SERVERS="responder sized_responder swarmd aquatic_udp opentracker"
#                                         (and swarmd_base: SWARMD_BASE, another
#                                         swarmd build, e.g. before a change,
#                                         run the same way as swarmd)
#   SIZED_PEERS_SWARMD_LOAD=9 SIZED_PEERS_AQUATIC=20
#                                         peers in sized_responder's answers
#                                         under each load: about the mean
#                                         swarmd answers with under it (the
#                                         loads report it: peers_per_announce,
#                                         "Peers per announce response")
#   LOADS="swarmd-load aquatic"
#   MODE=throughput|memory|latency|all
#   RATE=100000                           requests/s offered in latency mode
#   MEM_TORRENTS=1000000 MEM_PEERS=5000000 MEM_TIMEOUT=900
#   SERVER_CPU=0 LOAD_CPU=1  PORT=47000 (first port; one new port per run)
#   WORKERS=1                             server threads: swarmd's socket
#                                         workers and shards, aquatic_udp's
#                                         socket workers, opentracker's UDP
#                                         workers (the responders have one
#                                         thread, and are left out above 1)
#   SERVER_CPUS=$SERVER_CPU LOAD_CPUS=$LOAD_CPU
#                                         where the server and the load may
#                                         run (taskset lists, e.g. 0,1)
#   LOAD_SOCKETS=4                        client sockets (and addresses) of
#                                         each load generator; the kernel
#                                         spreads them over the server's
#                                         SO_REUSEPORT sockets by address
#   NEAR_NS=200                           cache-line round trip between the
#                                         two CPUs below which they are "near"
#   OUT=DIR   where logs and results.tsv go (default: a new /tmp directory)
#   BUILD=1   build swarmd and swarmd-load (release) first; 0 to skip
#
# A deployment as it would run on this machine, both CPUs for everybody and
# two server threads, in 16 client flows:
#   WORKERS=2 SERVER_CPUS=0,1 LOAD_CPUS=0,1 LOAD_SOCKETS=16 benches/compare.sh
#
# The references, if missing, are skipped with a note:
#   cargo install aquatic_udp                 (without --locked: its lockfile
#                                              no longer builds)
#   cargo install --locked aquatic_udp_load_test
#   apt-get install -y opentracker            (Debian's is whitelist-only: the
#                                              script whitelists every hash
#                                              both load generators use)
#
# Every process the script starts is stopped when it exits, however it exits.
#
# Where the CPUs sit: on a VM the host may move the two virtual CPUs, e.g.
# from two threads of one core to two cores far apart, and every server then
# answers ~30 % less per CPU-second, since each datagram crosses from one CPU
# to the other. Before and after every run the script measures the round trip
# of a cache line between SERVER_CPU and LOAD_CPU (`swarmd-load cores`) and
# files the run as near, far or mixed (moved during the run). The tables give
# all runs, then the runs of each state apart, with ratios within the state;
# mixed runs are only in the first.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARMD=${SWARMD:-$TARGET_DIR/release/swarmd}
SWARMD_BASE=${SWARMD_BASE:-}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/swarmd-load}

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-30}
SUMMARIZE=${SUMMARIZE:-$((DURATION * 5 / 6))}
SERVERS=${SERVERS:-"responder sized_responder swarmd aquatic_udp opentracker"}
SIZED_PEERS_SWARMD_LOAD=${SIZED_PEERS_SWARMD_LOAD:-9}
SIZED_PEERS_AQUATIC=${SIZED_PEERS_AQUATIC:-20}
LOADS=${LOADS:-"swarmd-load aquatic"}
MODE=${MODE:-throughput}
RATE=${RATE:-100000}
MEM_TORRENTS=${MEM_TORRENTS:-1000000}
MEM_PEERS=${MEM_PEERS:-5000000}
MEM_TIMEOUT=${MEM_TIMEOUT:-900}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-47000}
NEAR_NS=${NEAR_NS:-200}
WORKERS=${WORKERS:-1}
SERVER_CPUS=${SERVER_CPUS:-$SERVER_CPU}
LOAD_CPUS=${LOAD_CPUS:-$LOAD_CPU}
LOAD_SOCKETS=${LOAD_SOCKETS:-4}
BUILD=${BUILD:-1}
WARMUP=$((DURATION - SUMMARIZE))
CLK_TCK=$(getconf CLK_TCK)

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive number"
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 && $DURATION -le 3600 ]] ||
    die "DURATION must be between 2 and 3600"
[[ $SUMMARIZE =~ ^[0-9]+$ && $SUMMARIZE -ge 1 && $SUMMARIZE -lt $DURATION ]] ||
    die "SUMMARIZE must be at least 1 and less than DURATION"
if [[ " $LOADS " == *" aquatic "* ]] && ((DURATION < 10)); then
    die "aquatic_udp_load_test reports every 5 s: DURATION must be at least 10 with LOADS=aquatic"
fi
case $MODE in throughput | memory | latency | all) ;; *) die "MODE must be throughput, memory, latency or all" ;; esac
[[ $RATE =~ ^[0-9]+$ && $RATE -ge 1 ]] || die "RATE must be a positive number"
[[ $NEAR_NS =~ ^[0-9]+$ && $NEAR_NS -ge 1 ]] || die "NEAR_NS must be a positive number"
[[ $WORKERS =~ ^[0-9]+$ && $WORKERS -ge 1 && $WORKERS -le 64 ]] || die "WORKERS must be between 1 and 64"
[[ $LOAD_SOCKETS =~ ^[0-9]+$ && $LOAD_SOCKETS -ge 1 && $LOAD_SOCKETS -le 256 ]] ||
    die "LOAD_SOCKETS must be between 1 and 256"
for n in "$SIZED_PEERS_SWARMD_LOAD" "$SIZED_PEERS_AQUATIC"; do
    [[ $n =~ ^[0-9]+$ && $n -le 200 ]] || die "SIZED_PEERS_* must be between 0 and 200"
done
for cpus in "$SERVER_CPUS" "$LOAD_CPUS"; do
    [[ $cpus =~ ^[0-9]+(,[0-9]+)*$ ]] || die "SERVER_CPUS and LOAD_CPUS are lists of CPU numbers, e.g. 0,1"
done

# anyhow captures a backtrace for every error when this is set, which slows
# Rust servers down (see shared/BENCHMARKING.md).
unset RUST_BACKTRACE

OUT=${OUT:-$(mktemp -d /tmp/swarmd-compare.XXXXXX)}
mkdir -p "$OUT/logs"
WORK=$(mktemp -d /tmp/swarmd-compare-work.XXXXXX)
# opentracker drops to `nobody` inside its root directory: it must be readable.
chmod 755 "$WORK"

# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"

available_server() {
    case $1 in
    responder | sized_responder) ((WORKERS == 1)) ;;
    swarmd) [[ -x $SWARMD ]] ;;
    swarmd_base) [[ -n $SWARMD_BASE && -x $SWARMD_BASE ]] ;;
    aquatic_udp) command -v aquatic_udp >/dev/null ;;
    opentracker) command -v opentracker >/dev/null ;;
    *) die "unknown server $1 (responder, sized_responder, swarmd, swarmd_base, aquatic_udp, opentracker)" ;;
    esac
}

available_load() {
    case $1 in
    swarmd-load) return 0 ;;
    aquatic) command -v aquatic_udp_load_test >/dev/null ;;
    *) die "unknown load $1 (swarmd-load, aquatic)" ;;
    esac
}

servers=()
for s in $SERVERS; do
    if available_server "$s"; then
        servers+=("$s")
    elif [[ $s == *responder ]]; then
        note "skipping $s: it has one thread, and WORKERS=$WORKERS"
    else
        note "skipping $s: not installed/built"
    fi
done
loads=()
for l in $LOADS; do
    if available_load "$l"; then loads+=("$l"); else note "skipping load $l: not installed"; fi
done
((${#servers[@]} > 0)) || die "no server to measure"
((${#loads[@]} > 0)) || die "no load generator"

# opentracker (Debian) only tracks whitelisted hashes: list those of both load
# generators (each derives its hashes from a fixed seed). A torrent's hash
# depends on its number only, so the longer list covers both the throughput
# runs (1M torrents) and the memory runs. swarmd-load's come last, and the
# readiness check announces the very last one, so a tracker that is still
# loading its whitelist is not taken for ready.
LISTED=$((MEM_TORRENTS > 1000000 ? MEM_TORRENTS : 1000000))
if [[ " ${servers[*]} " == *" opentracker "* ]]; then
    note "writing opentracker's whitelist"
    {
        "$LOADGEN" hashes --aquatic-load-test --torrents 1000000
        "$LOADGEN" hashes --torrents "$LISTED"
    } >"$WORK/whitelist.txt"
    chmod 644 "$WORK/whitelist.txt"
fi

warn_if_busy

# ------------------------------------------------------------------- servers


rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

SERVER_PID=
SERVER_PORT=

# start_server NAME [LOAD]: starts NAME on a new port pinned to SERVER_CPUS
# and waits until it answers announces; LOAD (swarmd-load by default) is what
# will drive it. Sets SERVER_PID and SERVER_PORT.
start_server() {
    local name=$1 load=${2:-swarmd-load}
    PORT=$((PORT + 1))
    SERVER_PORT=$PORT
    local addr=127.0.0.1:$PORT log=$OUT/logs/$name-$PORT.log
    case $name in
    responder)
        taskset -c "$SERVER_CPUS" "$LOADGEN" responder --bind "$addr" --duration 3600 >"$log" 2>&1 &
        ;;
    sized_responder)
        local peers=$SIZED_PEERS_SWARMD_LOAD
        [[ $load == aquatic ]] && peers=$SIZED_PEERS_AQUATIC
        taskset -c "$SERVER_CPUS" "$LOADGEN" responder --bind "$addr" --duration 3600 --peers "$peers" \
            >"$log" 2>&1 &
        ;;
    swarmd | swarmd_base)
        cat >"$WORK/swarmd-$PORT.toml" <<EOF
[udp]
addresses = ["$addr"]
[workers]
socket_workers = $WORKERS
swarm_workers = $WORKERS
EOF
        local bin=$SWARMD
        [[ $name == swarmd_base ]] && bin=$SWARMD_BASE
        taskset -c "$SERVER_CPUS" "$bin" --config "$WORK/swarmd-$PORT.toml" >"$log" 2>&1 &
        ;;
    aquatic_udp)
        aquatic_udp -p |
            sed -e "s/^address = .*/address = \"$addr\"/" \
                -e "s/^socket_workers = .*/socket_workers = $WORKERS/" \
                -e 's/^log_level = .*/log_level = "error"/' >"$WORK/aquatic_udp-$PORT.toml"
        grep -q "^address = \"$addr\"" "$WORK/aquatic_udp-$PORT.toml" ||
            die "could not set aquatic_udp's address in its printed config"
        taskset -c "$SERVER_CPUS" aquatic_udp -c "$WORK/aquatic_udp-$PORT.toml" >"$log" 2>&1 &
        ;;
    opentracker)
        cat >"$WORK/opentracker-$PORT.conf" <<EOF
listen.udp $addr
listen.tcp $addr
listen.udp.workers $WORKERS
tracker.rootdir $WORK
access.whitelist whitelist.txt
EOF
        taskset -c "$SERVER_CPUS" opentracker -f "$WORK/opentracker-$PORT.conf" >"$log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    if ! "$LOADGEN" ping --target "$addr" --torrent $((LISTED - 1)) --wait 60 2>>"$log"; then
        note "$name did not come up on $addr; its log:"
        tail -n 20 "$log" >&2 || true
        stop_pid "$SERVER_PID"
        return 1
    fi
}

# ------------------------------------------------------------ throughput mode

RESULTS=$OUT/results.tsv

# run_load LOAD: drives the running server for DURATION seconds and appends
# one line to results.tsv.
run_load() {
    local server=$1 load=$2 round=$3
    local addr=127.0.0.1:$SERVER_PORT tag=$server-$load-$round
    local log=$OUT/logs/$tag.log
    local rps p99="-" invalid timeouts load_pid c0 c1 st0 steal rc=0 i window=$SUMMARIZE
    local near0 near1 state
    near0=$(cores_ns)
    case $load in
    swarmd-load)
        taskset -c "$LOAD_CPUS" "$LOADGEN" udp --target "$addr" --duration "$DURATION" \
            --warmup "$WARMUP" --sockets "$LOAD_SOCKETS" --quiet --json "$OUT/logs/$tag.json" >"$log" 2>&1 &
        load_pid=$!
        PIDS+=("$load_pid")
        nap "$WARMUP"
        ;;
    aquatic)
        aquatic_udp_load_test -p |
            sed -e "s/^server_address = .*/server_address = \"$addr\"/" \
                -e "s/^duration = .*/duration = $DURATION/" \
                -e "s/^summarize_last = .*/summarize_last = $SUMMARIZE/" \
                -e 's/^extra_statistics = .*/extra_statistics = false/' \
                -e 's/^workers = .*/workers = 1/' \
                -e "s/^sockets_per_worker = .*/sockets_per_worker = $LOAD_SOCKETS/" \
                -e 's/^multiple_client_ipv4s = .*/multiple_client_ipv4s = true/' \
                -e 's/^number_of_torrents = .*/number_of_torrents = 1000000/' \
                -e 's/^number_of_peers = .*/number_of_peers = 2000000/' \
                -e 's/^announce_peers_wanted = .*/announce_peers_wanted = 30/' \
                -e 's/^weight_connect = .*/weight_connect = 0/' \
                -e 's/^weight_announce = .*/weight_announce = 100/' \
                -e 's/^weight_scrape = .*/weight_scrape = 1/' \
                -e 's/^peer_seeder_probability = .*/peer_seeder_probability = 0.75/' \
                >"$WORK/aquatic-load-$SERVER_PORT.toml"
        taskset -c "$LOAD_CPUS" aquatic_udp_load_test -c "$WORK/aquatic-load-$SERVER_PORT.toml" \
            >"$log" 2>&1 &
        load_pid=$!
        PIDS+=("$load_pid")
        # It sets up its peers first, then sends, and prints its rate every 5 s
        # from then on; it averages the 5-s reports after the first
        # (DURATION - SUMMARIZE) / 5. The CPU window starts at its first
        # report, or at the first averaged one if that is later, and ends at
        # its last report. (The rate is steady by then, so a CPU window that
        # is a part of the averaged one gives the same ratio.)
        local split=$(((DURATION - SUMMARIZE) / 5)) reports=$(((DURATION + 4) / 5))
        local skip=$((split > 1 ? (split - 1) * 5 : 0))
        window=$(((reports - 1) * 5 - skip))
        for ((i = 0; i < 1200; i++)); do
            grep -q "^Requests out" "$log" 2>/dev/null && break
            kill -0 "$load_pid" 2>/dev/null || break
            sleep 0.05
        done
        nap "$skip"
        ;;
    esac
    c0=$(cpu_ticks "$SERVER_PID")
    st0=$(steal_snapshot)
    nap "$window"
    c1=$(cpu_ticks "$SERVER_PID")
    steal=$(steal_percent "$st0" "$(steal_snapshot)")
    wait "$load_pid" || rc=$?
    near1=$(cores_ns)
    state=$(cores_state "$near0" "$near1")
    case $load in
    swarmd-load)
        rps=$(kv "$log" responses_per_sec)
        p99=$(kv "$log" p99_us)
        invalid=$(kv "$log" invalid)
        timeouts=$(kv "$log" timeouts)
        ;;
    aquatic)
        rps=$(awk '/^Average responses per second/ {print $NF}' "$log")
        invalid="-"
        timeouts="-"
        ;;
    esac
    if [[ -z $rps ]]; then
        note "$tag: no figure (exit $rc); see $log"
        return 0
    fi
    local cpu per_cpu
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
    per_cpu=$(awk -v r="$rps" -v s="$window" -v c="$cpu" \
        'BEGIN {if (c > 0) printf "%.0f", r * s / c; else print "-"}')
    printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$load" "$rps" "$cpu" \
        "$per_cpu" "$p99" "$invalid" "$timeouts" "$steal" "$near0" "$near1" "$state" >>"$RESULTS"
    note "$(printf '%-15s %-12s round %s: %8.0f responses/s, server CPU %5s s, %s per CPU-s, p99 %s us, invalid %s, timeouts %s, steal %s%%, CPUs %s (%s/%s ns)' \
        "$server" "$load" "$round" "$rps" "$cpu" "$per_cpu" "$p99" "$invalid" "$timeouts" "$steal" "$state" "$near0" "$near1")"
}

median() {
    sort -g | awk '$1 != "-" {a[n++] = $1} END {
        if (n == 0) print "-"; else if (n % 2) print a[(n - 1) / 2]; else print (a[n / 2 - 1] + a[n / 2]) / 2 }'
}

# The smallest and largest of the numbers on stdin, as "min-max".
range() {
    sort -g | sed -n '1p;$p' | paste -sd-
}

throughput() {
    printf 'round\tserver\tload\tresponses_per_s\tserver_cpu_s\tresponses_per_cpu_s\tp99_us\tinvalid\ttimeouts\tsteal_pct\tcores_ns_before\tcores_ns_after\tcpus\n' >"$RESULTS"
    local round i n=${#servers[@]} server load
    for ((round = 1; round <= ROUNDS; round++)); do
        # Each load drives every server in turn, so that the runs a ratio
        # compares are close in time (the CPUs' state can change within
        # minutes); the order rotates each round so no server always runs
        # first.
        for load in "${loads[@]}"; do
            for ((i = 0; i < n; i++)); do
                server=${servers[$(((i + round - 1) % n))]}
                start_server "$server" "$load" || continue
                run_load "$server" "$load" "$round"
                stop_pid "$SERVER_PID"
            done
        done
    done

    local ref=swarmd
    awk -F'\t' 'NR > 1 && $2 == "swarmd" {found = 1} END {exit !found}' "$RESULTS" || ref=responder
    echo
    echo "UDP throughput: medians of $ROUNDS round(s) of ${DURATION} s (last ${SUMMARIZE} s averaged);"
    echo "server ($WORKERS thread(s)) on CPU $SERVER_CPUS, load ($LOAD_SOCKETS sockets) on CPU $LOAD_CPUS;"
    echo "ratios against $ref with the same load."
    throughput_table "$ref" all
    tables_by_state "$RESULTS" 13 throughput_table "$ref"
    paired_table "$ref"
    steal_line "$RESULTS" 10
}

# paired_table REF: per server and load, the ratio of its responses per
# CPU-second to REF's in the same round, over the rounds in which both runs
# found the CPUs in the same state (near or far, before and after each run).
# The two runs of a pair are minutes apart at most, so this is the least
# noisy ratio the script gives; n is the pairs.
paired_table() {
    local ref=$1
    echo
    echo "Paired: per CPU-second over $ref's in the same round, both runs in the same state:"
    printf '%-15s %-12s %3s %8s %14s %10s\n' server load n median range "$ref/it"
    local load server ratios med
    for load in "${loads[@]}"; do
        for server in "${servers[@]}"; do
            [[ $server == "$ref" ]] && continue
            ratios=$(awk -F'\t' -v s="$server" -v r="$ref" -v l="$load" '
                NR > 1 && $3 == l && $6 != "-" && $13 != "mixed" {
                    if ($2 == s) { x[$1] = $6; xs[$1] = $13 }
                    if ($2 == r) { y[$1] = $6; ys[$1] = $13 }
                }
                END {
                    for (k in x) if ((k in y) && xs[k] == ys[k] && y[k] > 0) printf "%.3f\n", x[k] / y[k]
                }' "$RESULTS")
            [[ -z $ratios ]] && continue
            med=$(median <<<"$ratios")
            printf '%-15s %-12s %3s %8s %14s %10s\n' "$server" "$load" "$(wc -l <<<"$ratios")" "$med" \
                "$(range <<<"$ratios")" "$(awk -v m="$med" 'BEGIN {printf "%.2f", 1 / m}')"
        done
    done
}

# tables_by_state FILE COL TABLE ARGS...: for each state (near, far) that
# some run of FILE was filed as (in column COL), a heading and `TABLE ARGS
# STATE`; then how many runs were in each state, mixed ones included.
tables_by_state() {
    local file=$1 col=$2 state
    shift 2
    for state in near far; do
        awk -F'\t' -v c="$col" -v st="$state" 'NR > 1 && $c == st {found = 1} END {exit !found}' "$file" || continue
        echo
        echo "The runs with the CPUs $state (round trip $([[ $state == near ]] && echo "below" || echo "at least") ${NEAR_NS} ns before and after):"
        "$@" "$state"
    done
    echo
    echo "Runs by where the CPUs were: $(awk -F'\t' -v c="$col" 'NR > 1 {n[$c]++} END {printf "near %d, far %d, mixed %d", n["near"], n["far"], n["mixed"]}' "$file")."
}

# throughput_table REF STATE: the medians per server and load over the runs
# filed as STATE (near, far, or all), with ratios against REF's medians over
# the same runs. A server with no run in STATE is left out; "n" is the runs.
throughput_table() {
    local ref=$1 state=$2
    printf '%-15s %-12s %3s %12s %14s %9s %10s %10s\n' server load n "responses/s" "per server-s" "p99 us" \
        "x$ref r/s" "x$ref /cpu"
    local rps per p99 ref_rps ref_per n
    pick() {
        awk -F'\t' -v s="$1" -v l="$2" -v c="$3" -v st="$state" \
            'NR > 1 && $2 == s && $3 == l && (st == "all" || $13 == st) {print $c}' "$RESULTS"
    }
    for load in "${loads[@]}"; do
        ref_rps=$(pick "$ref" "$load" 4 | median)
        ref_per=$(pick "$ref" "$load" 6 | median)
        for server in "${servers[@]}"; do
            rps=$(pick "$server" "$load" 4 | median)
            [[ $rps == "-" ]] && continue
            n=$(pick "$server" "$load" 4 | wc -l)
            per=$(pick "$server" "$load" 6 | median)
            p99=$(pick "$server" "$load" 7 | median)
            printf '%-15s %-12s %3s %12.0f %14s %9s %10s %10s\n' "$server" "$load" "$n" "$rps" "$per" "$p99" \
                "$(awk -v a="$rps" -v b="$ref_rps" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')" \
                "$(awk -v a="$per" -v b="$ref_per" 'BEGIN {if (b > 0 && a != "-") printf "%.2f", a / b; else print "-"}')"
        done
    done
}

# Prints the hypervisor's share of the CPUs over the runs of a results file
# whose column COL holds it.
steal_line() {
    local file=$1 col=$2 med max
    med=$(awk -F'\t' -v c="$col" 'NR > 1 {print $c}' "$file" | median)
    max=$(awk -F'\t' -v c="$col" 'NR > 1 && $c > m {m = $c} END {print m + 0}' "$file")
    echo "Steal (CPU time the hypervisor gave to other guests) over the runs: median ${med}%, max ${max}%."
    if ((max > 10)); then
        echo "Runs with more than 10 % steal measured the host as well: compare rounds, not only medians."
    fi
}

# --------------------------------------------------------------- latency mode

# The same load at a fixed offered rate (swarmd-load --rate, which measures
# latency; aquatic_udp_load_test does not), alternating servers each round.
latency() {
    local round i n=${#servers[@]} server log tag st0 steal near0 near1 state lat=$OUT/latency.tsv
    local rps p50 p99 p999 timeouts
    printf 'round\tserver\tresponses_per_s\tp50_us\tp99_us\tp999_us\ttimeouts\tsteal_pct\tcores_ns_before\tcores_ns_after\tcpus\n' >"$lat"
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            server=${servers[$(((i + round - 1) % n))]}
            start_server "$server" || continue
            tag=latency-$server-$round
            log=$OUT/logs/$tag.log
            near0=$(cores_ns)
            st0=$(steal_snapshot)
            taskset -c "$LOAD_CPUS" "$LOADGEN" udp --target "127.0.0.1:$SERVER_PORT" --rate "$RATE" \
                --duration "$DURATION" --warmup "$WARMUP" --sockets "$LOAD_SOCKETS" --quiet --json "$OUT/logs/$tag.json" \
                >"$log" 2>&1 || true
            steal=$(steal_percent "$st0" "$(steal_snapshot)")
            near1=$(cores_ns)
            stop_pid "$SERVER_PID"
            p99=$(kv "$log" p99_us)
            if [[ -z $p99 ]]; then
                note "$tag: no figure; see $log"
                continue
            fi
            rps=$(kv "$log" responses_per_sec)
            p50=$(kv "$log" p50_us)
            p999=$(kv "$log" p999_us)
            timeouts=$(kv "$log" timeouts)
            state=$(cores_state "$near0" "$near1")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$rps" "$p50" "$p99" \
                "$p999" "$timeouts" "$steal" "$near0" "$near1" "$state" >>"$lat"
            note "$(printf '%-15s latency round %s: %s responses/s, p50 %s us, p99 %s us, p99.9 %s us, timeouts %s, steal %s%%, CPUs %s (%s/%s ns)' \
                "$server" "$round" "$rps" "$p50" "$p99" "$p999" "$timeouts" "$steal" "$state" "$near0" "$near1")"
        done
    done
    echo
    echo "UDP latency at $RATE requests/s offered (swarmd-load): medians of $ROUNDS round(s) of ${DURATION} s"
    echo "(last ${SUMMARIZE} s measured), and the range over the rounds."
    latency_table "$lat" all
    tables_by_state "$lat" 11 latency_table "$lat"
    steal_line "$lat" 8
}

# latency_table FILE STATE: medians and ranges per server over the rounds
# filed as STATE (near, far, or all).
latency_table() {
    local lat=$1 state=$2 server
    printf '%-15s %3s %12s %10s %16s %10s %16s %9s\n' server n "responses/s" "p50 us" "p50 range" "p99 us" "p99 range" "p99.9 us"
    for server in "${servers[@]}"; do
        col() { awk -F'\t' -v s="$server" -v c="$1" -v st="$state" 'NR > 1 && $2 == s && (st == "all" || $11 == st) {print $c}' "$lat"; }
        [[ -z $(col 3) ]] && continue
        printf '%-15s %3s %12.0f %10s %16s %10s %16s %9s\n' "$server" "$(col 3 | wc -l)" "$(col 3 | median)" \
            "$(col 4 | median)" "$(col 4 | range)" \
            "$(col 5 | median)" "$(col 5 | range)" "$(col 6 | median)"
    done
}

# ---------------------------------------------------------------- memory mode

memory() {
    local server log before after peers timeouts load_pid
    echo
    echo "Memory: RSS after announcing ${MEM_PEERS} peers over ${MEM_TORRENTS} torrents (each peer once, swarmd-load)"
    printf '%-15s %12s %10s %10s %14s %9s\n' server peers "RSS0 MB" "RSS MB" "bytes/peer" timeouts
    for server in "${servers[@]}"; do
        [[ $server == *responder ]] && continue
        start_server "$server" || continue
        before=$(rss_kb "$SERVER_PID")
        log=$OUT/logs/memory-$server.log
        # Many client addresses (64 sockets), because some trackers key peers
        # by address and port; few requests in flight (128), because some
        # trackers keep the default socket buffer and drop a deeper queue.
        # Nobody stops, so every peer stays.
        taskset -c "$LOAD_CPUS" "$LOADGEN" udp --target "127.0.0.1:$SERVER_PORT" \
            --torrents "$MEM_TORRENTS" --peers "$MEM_PEERS" --peer-order once \
            --sockets 64 --inflight 2 --scrape 0 --stop-prob 0 \
            --duration "$MEM_TIMEOUT" --warmup 0 --quiet --json "$OUT/logs/memory-$server.json" \
            >"$log" 2>&1 &
        load_pid=$!
        PIDS+=("$load_pid")
        wait "$load_pid" || true
        nap 1
        after=$(rss_kb "$SERVER_PID")
        # An announce that timed out was most likely dropped before the tracker
        # saw it: count those peers out.
        timeouts=$(grep -o '\btimeouts=[0-9]*' "$log" | cut -d= -f2)
        peers=$(grep -o '\blive_peers=[0-9]*' "$log" | cut -d= -f2)
        peers=$((${peers:-0} - ${timeouts:-0}))
        stop_pid "$SERVER_PID"
        if ((peers <= 0)); then
            note "memory run against $server gave no figure; see $log"
            continue
        fi
        printf '%-15s %12s %10.1f %10.1f %14.1f %9s\n' "$server" "$peers" \
            "$(awk -v k="$before" 'BEGIN {print k / 1024}')" "$(awk -v k="$after" 'BEGIN {print k / 1024}')" \
            "$(awk -v a="$after" -v b="$before" -v p="$peers" 'BEGIN {print (a - b) * 1024 / p}')" \
            "$timeouts"
    done
}

note "results and logs in $OUT"
case $MODE in
throughput) throughput ;;
memory) memory ;;
latency) latency ;;
all)
    throughput
    latency
    memory
    ;;
esac
