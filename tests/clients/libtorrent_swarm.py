#!/usr/bin/python3
"""A seeder and a leecher (libtorrent) that can find each other only through
the tracker given on the command line. Exits 0 once the leecher has the whole
file, 1 on failure or after the time limit. Loopback only.

Usage: libtorrent_swarm.py TRACKER_URL [LISTEN_IP] [--expect-refusal]

A TRACKER_URL with `{token}` in it asks for a token for this torrent, as a
registry would issue one: the script prints `info_hash HEX` on a line of its
own, reads the token from the next line of stdin, and puts it in the URL.

With --expect-refusal the tracker must refuse both peers: the script exits 0
once both got a tracker error and printed it (`refused: MESSAGE`), with the
leecher still knowing no peer and having nothing; 1 if a tracker answered or
a peer was found.
"""
import os
import sys
import tempfile
import time

import libtorrent as lt

TIME_LIMIT = 60
# A refusal comes with the first announce: seconds, not a minute.
REFUSAL_LIMIT = 20


def session(listen_ip):
    host = f"[{listen_ip}]" if ":" in listen_ip else listen_ip
    s = lt.session(
        {
            "listen_interfaces": f"{host}:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "allow_multiple_connections_per_ip": True,
            "ssrf_mitigation": False,
            "alert_mask": lt.alert.category_t.tracker_notification
            | lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification,
        },
        flags=0,  # no default plugins: no peer exchange
    )
    return s


def drain(name, s, log):
    for a in s.pop_alerts():
        log.append(f"{name}: {type(a).__name__}: {a.message()}")


def expect_refusal(seeder, leecher, hl, deadline, log):
    """Both peers refused by the tracker, and nothing downloaded."""
    refused = {}
    while time.time() < deadline and len(refused) < 2:
        for name, s in (("seeder", seeder), ("leecher", leecher)):
            for a in s.pop_alerts():
                log.append(f"{name}: {type(a).__name__}: {a.message()}")
                if isinstance(a, lt.tracker_reply_alert):
                    print("\n".join(log[-40:]), file=sys.stderr)
                    print(f"{name} got a tracker reply", file=sys.stderr)
                    return 1
                if isinstance(a, lt.tracker_error_alert):
                    refused[name] = a.message()
        time.sleep(0.1)
    st = hl.status()
    if len(refused) < 2 or st.num_peers != 0 or st.progress != 0:
        print("\n".join(log[-40:]), file=sys.stderr)
        print(f"refused: {sorted(refused)}; leecher peers {st.num_peers}, "
              f"progress {st.progress:.2f}", file=sys.stderr)
        return 1
    for name, message in sorted(refused.items()):
        print(f"refused: {name}: {message}")
    return 0


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    refusal = "--expect-refusal" in sys.argv[1:]
    tracker = args[0]
    listen_ip = args[1] if len(args) > 1 else "127.0.0.1"
    root = tempfile.mkdtemp(prefix="swarmd-lt-")
    seed_dir, leech_dir = os.path.join(root, "seed"), os.path.join(root, "leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    with open(os.path.join(seed_dir, "payload.bin"), "wb") as f:
        f.write(os.urandom(512 * 1024))

    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, "payload.bin"))
    ct = lt.create_torrent(fs, 16 * 1024, lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, seed_dir)
    info = lt.torrent_info(ct.generate())
    if "{token}" in tracker:
        # The announce URL is not part of the info dictionary: the info
        # hash is known before the token is.
        print(f"info_hash {info.info_hashes().v1}", flush=True)
        tracker = tracker.replace("{token}", sys.stdin.readline().strip())
    info.add_tracker(tracker)

    log = []
    seeder, leecher = session(listen_ip), session(listen_ip)
    hs = seeder.add_torrent({"ti": info, "save_path": seed_dir})
    if refusal:
        hl = leecher.add_torrent({"ti": lt.torrent_info(info), "save_path": leech_dir})
        return expect_refusal(seeder, leecher, hl, time.time() + REFUSAL_LIMIT, log)
    deadline = time.time() + TIME_LIMIT
    # The seeder announces first, so the leecher's announce returns it.
    while time.time() < deadline:
        drain("seeder", seeder, log)
        st = hs.status()
        if st.is_seeding and any("tracker_reply_alert" in l for l in log):
            break
        time.sleep(0.1)
    hl = leecher.add_torrent({"ti": lt.torrent_info(info), "save_path": leech_dir})
    while time.time() < deadline:
        drain("seeder", seeder, log)
        drain("leecher", leecher, log)
        if hl.status().is_seeding:
            with open(os.path.join(leech_dir, "payload.bin"), "rb") as a, open(
                os.path.join(seed_dir, "payload.bin"), "rb"
            ) as b:
                if a.read() != b.read():
                    print("downloaded file differs", file=sys.stderr)
                    return 1
            print(f"leecher complete via {tracker}")
            return 0
        time.sleep(0.1)
    print("\n".join(log[-40:]), file=sys.stderr)
    print(f"timed out; leecher progress {hl.status().progress:.2f}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
