#!/usr/bin/env python3
"""benches/events_bench.py: what the /events feed costs, and how late it is.

Two measures, on a 2-core machine (the server pinned to SERVER_CPU, the load
generator and the subscribers to LOAD_CPU):

  throughput  announces per server-CPU-second under swarmd-load, with
              SUBSCRIBERS /events subscribers attached against none, the two
              alternating within each round (fresh server each run). The CPU
              is the server process's utime+stime (all threads, the stats
              thread included) over the measured window; the announces are
              the server's own counter (/stats swarm.announces) over it.
  lag         at RATE announces/s of swarmd-load, a probe announces a torrent
              of its own (started, then stopped, ...) and times each change
              until its event arrives on a filtered /events stream.

  benches/events_bench.py                      both, 3 rounds of 24 s
  ROUNDS=1 DURATION=12 MODE=throughput benches/events_bench.py
  LOAD_RATE=20000  throughput at a fixed offered rate instead of as fast as
                   answers come: on a machine shared with other work the
                   server's share of a CPU, and so its batch sizes, then move
                   less between runs
  FILTER=1 ...     each subscriber filters on one of the load's torrents (a
                   torrent page), instead of taking every torrent (a site's
                   backend)

Settings (environment): ROUNDS=3 DURATION=24 WARMUP=10 SUBSCRIBERS=1000
FILTER=0 MODE=throughput|lag|all LOAD_RATE=0 RATE=100000 INTERVAL_MS=1000 PROBES=100
TORRENTS=10000 PEERS=100000 (of swarmd-load) SERVER_CPU=0 LOAD_CPU=1
SWARMD=... LOADGEN=... (default: $CARGO_TARGET_DIR or target/, release).
Loopback only; every process started is stopped on exit.
"""

import json
import os
import random
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SWARMD = os.environ.get("SWARMD", os.path.join(TARGET, "release", "swarmd"))
LOADGEN = os.environ.get("LOADGEN", os.path.join(TARGET, "release", "swarmd-load"))
ROUNDS = int(os.environ.get("ROUNDS", 3))
DURATION = int(os.environ.get("DURATION", 24))
WARMUP = int(os.environ.get("WARMUP", 10))
SUBSCRIBERS = int(os.environ.get("SUBSCRIBERS", 1000))
FILTER = os.environ.get("FILTER", "0") == "1"
MODE = os.environ.get("MODE", "all")
RATE = int(os.environ.get("RATE", 100000))
LOAD_RATE = int(os.environ.get("LOAD_RATE", 0))
INTERVAL_MS = int(os.environ.get("INTERVAL_MS", 1000))
PROBES = int(os.environ.get("PROBES", 100))
TORRENTS = int(os.environ.get("TORRENTS", 10000))
PEERS = int(os.environ.get("PEERS", 100000))
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK


def announces(stats_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats", timeout=5) as r:
        return json.load(r)["swarm"]["announces"]


class Server:
    def __init__(self, work):
        self.udp, self.stats = free_port(), free_port()
        conf = os.path.join(work, f"tracker-{self.udp}.toml")
        with open(conf, "w") as f:
            f.write(
                f'[udp]\naddresses = ["127.0.0.1:{self.udp}"]\n'
                f"[http]\naddresses = []\n"
                f'[stats]\naddress = "127.0.0.1:{self.stats}"\n'
                f"events_interval_ms = {INTERVAL_MS}\n"
                f"max_event_subscribers = {max(SUBSCRIBERS, 1)}\n"
                f'[log]\nlevel = "warn"\n'
            )
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, SWARMD, "--config", conf],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while True:
            try:
                announces(self.stats)
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("swarmd did not start")
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def load(server, extra):
    return subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, LOADGEN, "--target", f"127.0.0.1:{server.udp}",
         "--torrents", str(TORRENTS), "--peers", str(PEERS), "--quiet", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def subscribers(server, n, hashes):
    """A child process (on LOAD_CPU) holding n /events streams, reading and
    counting everything; prints its tallies as JSON when sent SIGTERM."""
    code = r"""
import json, selectors, signal, socket, sys, time
port, n, hashes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
sel = selectors.DefaultSelector()
tally = {"bytes": 0, "resyncs": 0, "closed": 0, "refused": 0, "open": 0}
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    q = f"?info_hash={hashes[i % len(hashes)]}" if hashes else ""
    s.sendall(f"GET /events{q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = s.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        tally["refused"] += 1
        s.close()
        continue
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    tally["open"] += 1
print("ready", flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
while not stop:
    for key, _ in sel.select(0.2):
        try:
            b = key.fileobj.recv(262144)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            b = b""
        if not b:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            tally["closed"] += 1
            continue
        tally["bytes"] += len(b)
        if b"event: resync" in b:
            tally["resyncs"] += 1
print(json.dumps(tally), flush=True)
"""
    p = subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, sys.executable, "-c", code, str(server.stats), str(n), *hashes],
        stdout=subprocess.PIPE, text=True,
    )
    if p.stdout.readline().strip() != "ready":
        raise SystemExit("subscribers did not start")
    return p


def throughput():
    hashes = []
    if FILTER:
        out = subprocess.run([LOADGEN, "hashes", "--torrents", str(TORRENTS)],
                             capture_output=True, text=True, check=True).stdout.split()
        hashes = out[: max(1, SUBSCRIBERS)]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for r in range(ROUNDS):
            for subs in ([0, SUBSCRIBERS] if r % 2 == 0 else [SUBSCRIBERS, 0]):
                server = Server(work)
                rate = ["--rate", str(LOAD_RATE)] if LOAD_RATE else []
                lp = load(server, ["--duration", str(DURATION), "--warmup", "1", *rate])
                # Subscribers come once the load's peers have all announced
                # (its first seconds change nearly every torrent's counts;
                # after them, starts, stops and completions do).
                time.sleep(WARMUP)
                sp = subscribers(server, subs, hashes) if subs else None
                time.sleep(1)
                c0, a0, t0 = cpu_seconds(server.proc.pid), announces(server.stats), time.time()
                time.sleep(DURATION - WARMUP - 3)
                c1, a1, t1 = cpu_seconds(server.proc.pid), announces(server.stats), time.time()
                lp.wait()
                tally = {}
                if sp:
                    sp.terminate()
                    tally = json.loads(sp.communicate(timeout=30)[0].strip().splitlines()[-1])
                server.stop()
                row = {
                    "round": r, "subscribers": subs,
                    "announces_per_s": (a1 - a0) / (t1 - t0),
                    "per_cpu_s": (a1 - a0) / max(c1 - c0, 1e-9),
                    "server_cpu_share": (c1 - c0) / (t1 - t0), **tally,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nannounces per server-CPU-second, {SUBSCRIBERS} subscribers "
          f"({'filtered on one torrent each' if FILTER else 'all torrents'}) against none:")
    ratios, costs = [], []
    for r in range(ROUNDS):
        base = [x for x in rows if x["round"] == r and x["subscribers"] == 0][0]
        subs = [x for x in rows if x["round"] == r and x["subscribers"] == SUBSCRIBERS][0]
        ratios.append(subs["per_cpu_s"] / base["per_cpu_s"])
        # The feed's own cost: the CPU of the run with subscribers, less what
        # its announces cost at the rate of the run without.
        cost = subs["server_cpu_share"] - subs["announces_per_s"] / base["per_cpu_s"]
        costs.append(cost * 1000)
        print(f"  round {r}: none {base['per_cpu_s']:.0f}  with {subs['per_cpu_s']:.0f}  "
              f"ratio {ratios[-1]:.3f}  feed {costs[-1]:.0f} CPU-ms/s  "
              f"(subscribers read {subs.get('bytes', 0) / 1e6:.1f} MB, "
              f"resyncs {subs.get('resyncs', 0)}, closed {subs.get('closed', 0)})")
    print(f"  median ratio {statistics.median(ratios):.3f}, "
          f"median feed cost {statistics.median(costs):.0f} CPU-ms per second")


def udp_announce(sock, conn_id, info_hash, event, port):
    tid = random.getrandbits(32)
    sock.send(struct.pack(">QII20s20sQQQIIIiH", conn_id, 1, tid, info_hash, b"-PR0001-probeprobe01",
                          0, 0 if event == 2 else 1, 0, event, 0, 0, -1, port))
    while True:
        r = sock.recv(2048)
        if struct.unpack(">II", r[:8]) == (1, tid):
            return


def lag():
    with tempfile.TemporaryDirectory() as work:
        server = Server(work)
        lp = load(server, ["--duration", "3600", "--rate", str(RATE)])
        time.sleep(WARMUP)
        probe = bytes(random.getrandbits(8) for _ in range(20))
        ev = socket.create_connection(("127.0.0.1", server.stats))
        ev.sendall(f"GET /events?info_hash={probe.hex()} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += ev.recv(4096)
        buf = buf.split(b"\r\n\r\n", 1)[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect(("127.0.0.1", server.udp))
        u.settimeout(2)
        tid = 7
        u.send(struct.pack(">QII", 0x41727101980, 0, tid))
        conn_id = struct.unpack(">IIQ", u.recv(16))[2]
        lags, seeders = [], 0
        a0, t0 = announces(server.stats), time.time()
        for i in range(PROBES):
            # Started (a seeder: 1), then stopped (0), and so on.
            event, want = (2, 1) if i % 2 == 0 else (3, 0)
            time.sleep(random.uniform(0, INTERVAL_MS / 1000))
            sent = time.time()
            udp_announce(u, conn_id, probe, event, 6881)
            ev.settimeout(5 + INTERVAL_MS / 1000)
            while True:
                if b"\n\n" not in buf:
                    buf += ev.recv(65536)
                    continue
                block, buf = buf.split(b"\n\n", 1)
                if not block.startswith(b"data: "):
                    continue
                seeders = json.loads(block[6:])["seeders"]
                if seeders == want:
                    lags.append((time.time() - sent) * 1000)
                    break
        rate = (announces(server.stats) - a0) / (time.time() - t0)
        lp.terminate()
        lp.wait()
        server.stop()
    lags.sort()
    q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
    print(f"\nlag from announce to event, events_interval_ms = {INTERVAL_MS}, "
          f"{rate:.0f} announces/s served, {len(lags)} probes: "
          f"p50 {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, p99 {q(0.99):.0f} ms, max {lags[-1]:.0f} ms")


if __name__ == "__main__":
    for tool in (SWARMD, LOADGEN):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"missing {tool}: cargo build --release && cargo build --release -p swarmd-load")
    if MODE in ("throughput", "all"):
        throughput()
    if MODE in ("lag", "all"):
        lag()
