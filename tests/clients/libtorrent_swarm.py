#!/usr/bin/python3
"""A seeder and a leecher (libtorrent) that can find each other only through
the tracker given on the command line. Exits 0 once the leecher has the whole
file, 1 on failure or after the time limit. Loopback only.

Usage: libtorrent_swarm.py TRACKER_URL [LISTEN_IP]
"""
import os
import sys
import tempfile
import time

import libtorrent as lt

TIME_LIMIT = 60


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


def main():
    tracker = sys.argv[1]
    listen_ip = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    root = tempfile.mkdtemp(prefix="swarmd-lt-")
    seed_dir, leech_dir = os.path.join(root, "seed"), os.path.join(root, "leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    with open(os.path.join(seed_dir, "payload.bin"), "wb") as f:
        f.write(os.urandom(512 * 1024))

    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, "payload.bin"))
    ct = lt.create_torrent(fs, 16 * 1024, lt.create_torrent.v1_only)
    ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, seed_dir)
    info = lt.torrent_info(ct.generate())

    log = []
    seeder, leecher = session(listen_ip), session(listen_ip)
    hs = seeder.add_torrent({"ti": info, "save_path": seed_dir})
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
