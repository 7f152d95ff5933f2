#!/usr/bin/env bash
# Checks systemd/swarmd.service: `systemd-analyze verify` must pass and
# `systemd-analyze security --offline=true` must rate it 2.0 or better.
# Needs a built swarmd (BIN, default target/debug/swarmd): verify checks that
# ExecStart's binary exists, so it is put at /usr/local/bin/swarmd for the
# check if nothing is there, and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=systemd/swarmd.service
bin=${BIN:-target/debug/swarmd}

if ! command -v systemd-analyze >/dev/null; then
  apt-get install -y -qq systemd >/dev/null
fi

placed=""
if [ ! -e /usr/local/bin/swarmd ]; then
  install -m 0755 "$bin" /usr/local/bin/swarmd
  placed=1
fi
trap 'if [ -n "$placed" ]; then rm -f /usr/local/bin/swarmd; fi' EXIT

systemd-analyze verify "$unit"
level=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 |
  sed -n 's/.*Overall exposure level for swarmd.service: \([0-9.]*\).*/\1/p')
if [ -z "$level" ]; then
  echo "systemd-analyze security gave no exposure level" >&2
  exit 1
fi
echo "systemd-analyze security: exposure $level (must be <= 2.0)"
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'
