# shellcheck shell=bash
# benches/common.sh: what the comparison scripts share: stopping the
# processes they start (on any exit), sleeping so that a signal is handled
# at once, building the binaries, and the readings taken around each run
# (CPU time, steal, where the two CPUs sit). Sourced, not run; expects WORK,
# ROOT, BUILD, SERVERS, LOADGEN, note() and die() to be set, and SERVER_CPU,
# LOAD_CPU and NEAR_NS for cores_ns and cores_state.

PIDS=()

# Stops one process: TERM, then KILL if it is still there after 5 s.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

NAP_PID=

# Sleeps in the background and waits for it, so a signal runs the trap at once
# rather than after the sleep.
nap() {
    sleep "$1" &
    NAP_PID=$!
    wait "$NAP_PID" || true
    NAP_PID=
}

cleanup() {
    local pid
    [[ -n $NAP_PID ]] && kill "$NAP_PID" 2>/dev/null
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build, tools

if [[ $BUILD == 1 ]]; then
    note "building swarmd-load"
    (cd "$ROOT" && cargo build --release --quiet -p swarmd-load) || die "swarmd-load does not build"
    if [[ " $SERVERS " == *" swarmd "* ]]; then
        note "building swarmd"
        (cd "$ROOT" && cargo build --release --quiet -p swarmd --bin swarmd) || note "swarmd does not build"
    fi
fi
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN"

# Warns when something else is using the CPU: the figures would be noise.
warn_if_busy() {
    local a b idle total=0 i busy
    read -ra a </proc/stat
    sleep 1
    read -ra b </proc/stat
    idle=$((b[4] + b[5] - a[4] - a[5]))
    for ((i = 1; i < ${#a[@]}; i++)); do total=$((total + b[i] - a[i])); done
    busy=$((total > 0 ? 100 * (total - idle) / total : 0))
    if ((busy > 10)); then
        note "WARNING: the machine is ${busy}% busy before the benchmark; figures will be noisy"
    fi
}

# cpu_ticks PID: utime + stime of the whole process (all its threads).
cpu_ticks() {
    # Field 2 (comm) may hold spaces; count the fields after its ')'.
    local rest
    rest=$(sed 's/^.*) //' "/proc/$1/stat")
    awk '{print $12 + $13}' <<<"$rest"
}

# kv LOG KEY: the value of the first KEY=value in LOG (swarmd-load's summary).
kv() { grep -o "\b$2=[^ ]*" "$1" | head -1 | cut -d= -f2; }

# cores_ns: the cache-line round trip between SERVER_CPU and LOAD_CPU (see
# `swarmd-load cores`), in ns, or "-". On a VM it tells where the host has put
# the two virtual CPUs right now.
cores_ns() {
    local v
    v=$("$LOADGEN" cores --cpus "$SERVER_CPU,$LOAD_CPU" 2>/dev/null | grep -o 'round_trip_ns=[0-9]*' | cut -d= -f2)
    echo "${v:--}"
}

# cores_state NS_BEFORE NS_AFTER: "near" when both round trips are below
# NEAR_NS, "far" when both are at or above it, "mixed" when the host moved a
# CPU during the run (or a figure is missing).
cores_state() {
    if [[ $1 == - || $2 == - ]]; then
        echo mixed
    elif (($1 < NEAR_NS && $2 < NEAR_NS)); then
        echo near
    elif (($1 >= NEAR_NS && $2 >= NEAR_NS)); then
        echo far
    else
        echo mixed
    fi
}

# steal_snapshot: "steal total" ticks over all CPUs, from /proc/stat. The
# hypervisor's share of a window is (steal1 - steal0) / (total1 - total0):
# runs with much of it measured the host's other guests as well.
steal_snapshot() {
    awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit}' /proc/stat
}

# steal_percent "S0 T0" "S1 T1": the steal share between two snapshots.
steal_percent() {
    local a b
    read -ra a <<<"$1"
    read -ra b <<<"$2"
    awk -v s="$((b[0] - a[0]))" -v t="$((b[1] - a[1]))" 'BEGIN {if (t > 0) printf "%.0f", 100 * s / t; else print 0}'
}
