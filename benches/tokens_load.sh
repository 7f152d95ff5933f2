#!/usr/bin/env bash
# benches/tokens_load.sh: what signed announce tokens cost the whole daemon.
# The same swarmd build, the same load (swarmd-load), with [access.token]
# off and on; responses per server-CPU-second of each, runs alternating
# off, on, off, on, ... and the ratio on/off paired within each round. With
# tokens on, swarmd-load signs one token per torrent at start and sends it
# with every announce (UDP: BEP 41 URL data `/announce?jwt=`; HTTP:
# `&jwt=`); the warm-up lets every token be verified once, so the measured
# window is the cache-warm steady state (a client re-announcing).
#
#   benches/tokens_load.sh                          RS256 over UDP, 3 rounds
#   MODES="off wire on" benches/tokens_load.sh      and a run whose load sends
#                                    the tokens to a tracker with tokens off:
#                                    what the longer datagrams cost alone
#   ALG=HS256 PROTO=http ROUNDS=2 benches/tokens_load.sh
#   SWARMD_BASE=OLD/swarmd MODES="off base on" benches/tokens_load.sh
#                                    and tokens on with another build
#                                    (before a change), in the same rounds
#
# Settings (environment):
#   ROUNDS=3 DURATION=30 WARMUP=10   seconds per run and the first ones left
#                                    out (every token is verified in them)
#   TORRENTS=5000                    torrents, one token each, signed at start
#                                    (RS256: about a millisecond each)
#   PEERS=30000                      peers of the load; they announce in turn
#                                    (--peer-order sequential), so by the end
#                                    of the warm-up every one has announced,
#                                    every token is verified, and none is
#                                    verified in the window (at random, a
#                                    torrent with one peer of 200000 may not
#                                    come up for a minute, and its RSA check
#                                    would be counted as a cost of the warm
#                                    state)
#   RATE=15000                       requests per second offered, the same in
#                                    both (0: as fast as answers come). Why a
#                                    fixed rate: the load generator is slower
#                                    with tokens (600-byte datagrams), and a
#                                    server offered less gets smaller batches,
#                                    costing more system calls a request; at
#                                    one rate below both maxima, both get the
#                                    same batches and only the tokens differ
#   ALG=RS256|ES256|HS256  PROTO=udp|http
#   SERVER_CPU=0 LOAD_CPU=1 PORT=48100 (one new port per run)
#   OUT=DIR   logs and results.tsv (default: a new /tmp directory)
#   BUILD=1   build swarmd and swarmd-load (release) first; 0 to skip
#
# Keys are made by the `openssl` command in a temporary directory and
# removed at exit; every process the script starts is stopped when it exits.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARMD=${SWARMD:-$TARGET_DIR/release/swarmd}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/swarmd-load}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-10}
TORRENTS=${TORRENTS:-5000}
RATE=${RATE:-15000}
PEERS=${PEERS:-30000}
ALG=${ALG:-RS256}
PROTO=${PROTO:-udp}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-48100}
BUILD=${BUILD:-1}
MODES=${MODES:-"off on"}
SERVERS="swarmd"
CLK_TCK=$(getconf CLK_TCK)

die() { echo "tokens_load.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

((WARMUP < DURATION)) || die "WARMUP must be less than DURATION"
case $ALG in RS256 | ES256 | HS256) ;; *) die "ALG must be RS256, ES256 or HS256" ;; esac
case $PROTO in udp | http) ;; *) die "PROTO must be udp or http" ;; esac
command -v openssl >/dev/null || die "needs the openssl command"

WORK=$(mktemp -d /tmp/swarmd-tokens-load.XXXXXX)
OUT=${OUT:-$(mktemp -d /tmp/swarmd-tokens-load-out.XXXXXX)}
mkdir -p "$OUT/logs"
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"
[[ -x $SWARMD ]] || die "no swarmd at $SWARMD"

# ------------------------------------------------------------------ the keys

case $ALG in
RS256)
    openssl genrsa -out "$WORK/key.pem" 2048 2>/dev/null
    # swarmd-load reads RSA keys as PKCS#1 DER.
    openssl rsa -in "$WORK/key.pem" -traditional -outform DER -out "$WORK/key.der" 2>/dev/null
    ;;
ES256)
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/key.pem" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$WORK/key.pem" -outform DER -out "$WORK/key.der"
    ;;
HS256)
    openssl rand -hex 32 >"$WORK/key.der"
    ;;
esac
TOKEN_ARGS=(--token-key "$WORK/key.der" --token-alg "$ALG" --token-issuer registry.example
    --token-audience swarmd)
if [[ $ALG == HS256 ]]; then
    TOKEN_TABLE="secret_file = \"$WORK/key.der\""
else
    TOKEN_ARGS+=(--token-kid k1)
    "$LOADGEN" jwks --token-key "$WORK/key.der" --token-alg "$ALG" --token-kid k1 >"$WORK/keys.json"
    TOKEN_TABLE="jwks_file = \"$WORK/keys.json\""
fi

# ------------------------------------------------------------------ one run

RESULTS=$OUT/results.tsv
printf 'round\ttokens\tresponses_per_s\terrors\tserver_cpu_s\tresponses_per_cpu_s\n' >"$RESULTS"

# run ROUND off|wire|on|base: a fresh swarmd, the load, one line of
# results.tsv. wire: the load sends tokens, the tracker has tokens off.
# base: tokens on, in the build $SWARMD_BASE.
run() {
    local round=$1 tokens=$2 addr=127.0.0.1:$PORT tag=$2-$1 binary=$SWARMD
    local conf=$WORK/swarmd-$tag.toml log=$OUT/logs/swarmd-$tag.log load_log=$OUT/logs/load-$tag.log
    cat >"$conf" <<EOF
[udp]
addresses = ["$addr"]
[http]
addresses = ["$addr"]
[stats]
address = ""
[workers]
socket_workers = 1
swarm_workers = 1
EOF
    if [[ $tokens == base ]]; then
        binary=${SWARMD_BASE:?base needs SWARMD_BASE, a swarmd binary}
    fi
    if [[ $tokens == on || $tokens == base ]]; then
        printf '[access.token]\nalgorithm = "%s"\n%s\nissuer = "registry.example"\naudience = "swarmd"\n' \
            "$ALG" "$TOKEN_TABLE" >>"$conf"
    fi
    taskset -c "$SERVER_CPU" "$binary" --config "$conf" >"$log" 2>&1 &
    local server=$!
    PIDS+=("$server")
    local i
    for ((i = 0; i < 100; i++)); do
        grep -qs "listening on $PROTO://" "$log" && break
        kill -0 "$server" 2>/dev/null || die "swarmd did not start: $(cat "$log")"
        nap 0.1
    done
    local args=(--target "$addr" --duration "$DURATION" --warmup "$WARMUP" --torrents "$TORRENTS"
        --peers "$PEERS" --peer-order sequential --rate "$RATE" --json "$OUT/logs/load-$tag.json")
    [[ $tokens != off ]] && args+=("${TOKEN_ARGS[@]}")
    taskset -c "$LOAD_CPU" "$LOADGEN" "$PROTO" "${args[@]}" --quiet >"$load_log" 2>&1 &
    local load=$!
    PIDS+=("$load")
    # The load signs its tokens before it sends anything.
    if [[ $tokens != off ]]; then
        for ((i = 0; i < 3000; i++)); do
            grep -qs "^signed" "$load_log" && break
            kill -0 "$load" 2>/dev/null || die "the load stopped: $(cat "$load_log")"
            nap 0.1
        done
    fi
    nap "$WARMUP"
    local c0 c1
    c0=$(cpu_ticks "$server")
    nap $((DURATION - WARMUP))
    c1=$(cpu_ticks "$server")
    wait "$load" || note "the load exited with $?"
    stop_pid "$server"
    local rps errors cpu per
    rps=$(kv "$load_log" responses_per_sec)
    errors=$(kv "$load_log" errors)
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
    per=$(awk -v r="$rps" -v w=$((DURATION - WARMUP)) -v c="$cpu" 'BEGIN {printf "%.0f", (c > 0 ? r * w / c : 0)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$tokens" "$rps" "$errors" "$cpu" "$per" >>"$RESULTS"
    note "$(printf 'round %s tokens %-3s: %8s responses/s, %s errors, server CPU %s s, %s per CPU-s' \
        "$round" "$tokens" "$rps" "$errors" "$cpu" "$per")"
    PORT=$((PORT + 1))
}

warn_if_busy
note "$ALG over $PROTO, $TORRENTS torrents, $RATE requests/s, $ROUNDS rounds of $DURATION s (warm-up $WARMUP s); out: $OUT"
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in $MODES; do run "$r" "$mode"; done
done

# ------------------------------------------------------------------ summary

awk -F'\t' 'NR > 1 { per[$1, $2] = $6; rounds[$1] = 1 }
END {
    n = 0
    for (r in rounds) {
        ratio = per[r, "on"] / per[r, "off"]
        printf "round %s: off %s, on %s responses per server-CPU-second: on/off %.2f", r, per[r, "off"], per[r, "on"], ratio
        if ((r, "wire") in per) printf "; wire %s: wire/off %.2f", per[r, "wire"], per[r, "wire"] / per[r, "off"]
        if ((r, "base") in per) printf "; base %s: base/off %.2f", per[r, "base"], per[r, "base"] / per[r, "off"]
        printf "\n"
        sum += ratio; n++
    }
    if (n) printf "mean on/off: %.2f over %d rounds\n", sum / n, n
}' "$RESULTS"
