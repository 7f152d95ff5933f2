#!/usr/bin/env bash
# Runs systemd/swarmd.service under a real systemd: boots a minimal Debian 12
# (bookworm) root filesystem as a container (systemd-nspawn, systemd as its
# PID 1), installs the built binary, the unit and a configuration, and checks
# what a sysadmin would: start, status, healthz, a UDP connect, the open
# files limit, reload of a good file and of a bad one (which must fail and
# keep the service running), warnings at `journalctl -p warning`, the
# watchdog fed with no restart, a passkeys file readable by root alone
# passed as a credential, and a stop within TimeoutStopSec.
#
# As root. The root filesystem is built once with debootstrap and cached
# (SWARMD_CI_CACHE, default /var/cache/swarmd-ci); each run boots an overlay
# of it, so the cache stays clean. Everything made on the host (overlay,
# cgroups, /run/systemd entries) is removed at the end.
# Needs a built swarmd (BIN, default target/debug/swarmd).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BIN:-${CARGO_TARGET_DIR:-target}/debug/swarmd}")
unit=$(realpath systemd/swarmd.service)
cache=${SWARMD_CI_CACHE:-/var/cache/swarmd-ci}
rootfs=$cache/rootfs
start_time=$SECONDS

say() { echo "boot-check: $*"; }
fail() {
  echo "boot-check: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "must run as root"

# Without recommended packages: one of them (libnss-mymachines, through
# systemd-container) rewrites the host's /etc/nsswitch.conf.
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
  apt-get install -y -qq --no-install-recommends debootstrap systemd-container >/dev/null
fi

# procps: /bin/kill, which ExecReload= uses (on any usual Debian install).
packages=systemd,systemd-sysv,procps
if [ ! -x "$rootfs/lib/systemd/systemd" ] || [ "$(cat "$rootfs.packages" 2>/dev/null)" != "$packages" ]; then
  # The mirror apt already uses.
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  mirror=${mirror:-http://deb.debian.org/debian}
  say "building a bookworm root filesystem from $mirror (cached in $rootfs)"
  rm -rf "$rootfs.tmp"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs.tmp" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || { tail -n 20 "$cache/debootstrap.log"; fail "debootstrap"; }
  rm -rf "$rootfs"
  mv "$rootfs.tmp" "$rootfs"
  echo "$packages" >"$rootfs.packages"
fi

# What this run makes on the host, removed by cleanup().
work=$(mktemp -d /tmp/swarmd-boot-check.XXXXXX)
root=$work/root
name=swarmd-ci-$$
cgroups=()
run_before=$(ls -A /run/systemd 2>/dev/null || true)
nspawn_pid=""
cleanup() {
  set +e
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  # Processes left in our cgroups (none, after a clean power-off).
  for cg in "${cgroups[@]}"; do
    [ -d "$cg" ] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  done
  mountpoint -q "$root" && umount "$root"
  # A cgroup is busy for a moment after its last process was killed.
  for cg in "${cgroups[@]}"; do
    for _ in $(seq 50); do
      [ -d "$cg" ] || break
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
      sleep 0.1
    done
    [ -d "$cg" ] && echo "boot-check: could not remove cgroup $cg" >&2
  done
  # nspawn leaves /run/systemd/nspawn (and may leave other entries).
  for entry in $(ls -A /run/systemd 2>/dev/null); do
    grep -qxF "$entry" <<<"$run_before" || rm -rf "/run/systemd/$entry"
  done
  [ -z "$run_before" ] && rmdir /run/systemd 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# A copy-on-write view of the cached root filesystem.
mkdir -p "$work/upper" "$work/overlay-work" "$root"
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/overlay-work" "$root"

install -m 0755 "$bin" "$root/usr/local/bin/swarmd"
install -m 0644 "$unit" "$root/etc/systemd/system/swarmd.service"
mkdir -p "$root/etc/systemd/system/swarmd.service.d" "$root/etc/swarmd"
# The passkeys, for root alone; the service reads its copy as a credential.
printf 'ci-key-0123456789 ci\n' >"$root/etc/swarmd/passkeys"
chmod 0600 "$root/etc/swarmd/passkeys"
printf '[Service]\nLoadCredential=passkeys:/etc/swarmd/passkeys\n' \
  >"$root/etc/systemd/system/swarmd.service.d/credentials.conf"
config() { # interval socket_workers
  cat <<EOF
[udp]
addresses = ["127.0.0.1:6969"]
[http]
addresses = ["127.0.0.1:6969"]
[stats]
address = "127.0.0.1:6970"
[announce]
interval = $1
[workers]
socket_workers = $2
[access]
passkeys_file = "credential:passkeys"
EOF
}
config 1800 1 >"$root/etc/swarmd/tracker.toml"
# No login prompt on the console; nothing else is needed to boot.
ln -sf /dev/null "$root/etc/systemd/system/console-getty.service"
echo "$name" >"$root/etc/hostname"

# The host has a mixed cgroup layout and no systemd of its own: nspawn runs
# in cgroups of its own (the named `systemd` hierarchy and the unified one),
# which the container's systemd fills and cleanup() removes.
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  if [ -d "$h" ]; then
    mkdir "$h/$name"
    cgroups+=("$h/$name")
  fi
done
if [ ${#cgroups[@]} = 0 ] && [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir "/sys/fs/cgroup/$name"
  cgroups+=("/sys/fs/cgroup/$name")
fi

say "booting"
boot_start=$SECONDS
(
  for cg in "${cgroups[@]}"; do echo "$BASHPID" >"$cg/cgroup.procs"; done
  exec systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
    --console=pipe --machine="$name" --directory="$root" </dev/null
) >"$work/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1, seen from here: a process of nspawn's whose PID in
# its own namespace is 1. Searched at any depth: once booted, the container's
# systemd moves itself to payload/init.scope, and on an idle machine it does
# so before the first look.
leader=""
for _ in $(seq 300); do
  for p in $(find "${cgroups[0]}" -name cgroup.procs -exec cat {} + 2>/dev/null); do
    if grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$p/status" 2>/dev/null; then
      leader=$p
      break 2
    fi
  done
  kill -0 "$nspawn_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/console.log"; fail "the container did not start"; }

inside() { nsenter --target "$leader" --mount --uts --ipc --net --pid -- \
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"; }
# Host tools (curl, python3) in the container's network only.
in_net() { nsenter --target "$leader" --net -- "$@"; }

# Until its systemd listens (it answers "offline" before), then until it
# has booted.
state=offline
for _ in $(seq 600); do
  state=$(inside systemctl is-system-running --wait 2>/dev/null || true)
  [ "$state" != offline ] && [ -n "$state" ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || break
  sleep 0.1
done
say "booted in $((SECONDS - boot_start)) s: $state"
case $state in
  running) ;;
  degraded) inside systemctl --failed --no-legend || true ;;
  *) cat "$work/console.log"; fail "the container's systemd is $state" ;;
esac

show() { inside systemctl show -p "$1" --value swarmd; }
journal() { inside journalctl -u swarmd --no-pager -o cat "$@"; }

# Start: Type=notify, so this returns once swarmd sent READY=1.
inside systemctl start swarmd || { journal; fail "start"; }
inside systemctl status swarmd --no-pager --lines=0 || fail "status"
pid=$(show MainPID)
say "started, pid $pid, uid $(inside stat -c %u "/proc/$pid") (dynamic)"

# healthz on the stats endpoint, and a BEP 15 connect over UDP.
[ "$(in_net curl -fsS --max-time 5 http://127.0.0.1:6970/healthz)" = ok ] || fail "healthz"
in_net python3 - <<'EOF' || fail "UDP connect"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(struct.pack(">QII", 0x41727101980, 0, 1234), ("127.0.0.1", 6969))
action, tid, _ = struct.unpack(">IIQ", s.recv(16))
assert (action, tid) == (0, 1234), (action, tid)
EOF
say "healthz ok, UDP connect answered"

# The descriptor limit the process sees is the one swarmd logs. It is
# LimitNOFILE= (65536) unless the host caps it: systemd then sets the
# closest it can, silently (a host without CAP_SYS_RESOURCE cannot raise
# its hard limit), and swarmd's line is where an operator sees it.
limit=$(inside sh -c "sed -n 's/^Max open files *\([0-9]*\).*/\1/p' /proc/$pid/limits")
journal | grep -q "open files limit: $limit\b" ||
  { journal | grep "open files"; fail "the open files limit $limit is not the one logged"; }
[ "$limit" = 65536 ] || say "note: LimitNOFILE=65536 capped to $limit by this host"
# The passkeys came as a credential, readable by root alone on disk.
journal | grep -q "access:.*, 1 passkeys" || { journal | grep access; fail "passkeys not loaded"; }
say "open files limit $limit (seen and logged), passkeys loaded from a root-only file"

# Reload of a good file: applied; a key that needs a restart is a warning.
config 1000 2 >"$root/etc/swarmd/tracker.toml"
inside systemctl reload swarmd || { journal | tail; fail "reload of a good file"; }
for _ in $(seq 100); do journal | grep -q "SIGHUP: reloaded" && break; sleep 0.1; done
journal | grep -q "SIGHUP: reloaded" || fail "the good file was not reloaded"
inside journalctl -u swarmd -p warning --no-pager -o cat | grep -q "only applied by a restart" ||
  { journal; fail "no warning at journalctl -p warning"; }
say "reload of a good file ok; its warning shows at -p warning"

# Reload of a bad file: systemctl fails, swarmd keeps running as it was.
printf '[announce]\ninterval = "soon"\n' >"$root/etc/swarmd/tracker.toml"
if inside systemctl reload swarmd 2>/dev/null; then fail "reload of a bad file succeeded"; fi
[ "$(show ActiveState)" = active ] && [ "$(show MainPID)" = "$pid" ] || fail "not running after a bad reload"
inside journalctl -u swarmd -p err --no-pager -o cat | grep -q 'tracker.toml:2' ||
  { journal | tail; fail "the bad file's error is not at -p err"; }
config 1000 2 >"$root/etc/swarmd/tracker.toml"
say "reload of a bad file fails; the service runs on"

# The watchdog (WatchdogSec=30s, fed every 15 s): 20 s, no restart.
fed=$(show WatchdogTimestampMonotonic)
sleep 20
[ "$(show MainPID)" = "$pid" ] && [ "$(show NRestarts)" = 0 ] || fail "restarted within 20 s"
[ "$(show WatchdogTimestampMonotonic)" != "$fed" ] || fail "the watchdog was not fed in 20 s"
say "watchdog fed, no restart in 20 s"

# Stop: within TimeoutStopSec, exit 0.
t0=$(date +%s%N)
inside systemctl stop swarmd
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(show Result)" = success ] && [ "$(show ExecMainStatus)" = 0 ] || { journal | tail; fail "stop"; }
limit_ms=$(($(show TimeoutStopUSec | sed 's/s$//') * 1000))
[ "$ms" -lt "$limit_ms" ] || fail "stop took $ms ms"
say "stopped in $ms ms"

# Power off, and wait for nspawn to end.
kill -TERM "$nspawn_pid"
for _ in $(seq 300); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$nspawn_pid" 2>/dev/null && fail "the container did not power off"
wait "$nspawn_pid" || true
nspawn_pid=""
say "ok in $((SECONDS - start_time)) s"
