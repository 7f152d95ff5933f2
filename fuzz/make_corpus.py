#!/usr/bin/env python3
"""Writes the small seed corpus of each fuzz target under fuzz/corpus/.

The seeds are well-formed inputs (and a few near misses) so the fuzzers
start from the interesting shapes instead of finding them byte by byte.
Run it again after changing it; the files are committed.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x41727101980


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def announce(event=2, port=6881, options=b"", num_want=-1):
    return (
        struct.pack(">QII", 0x1122334455667788, 1, 7)
        + b"\xab" * 20
        + b"-TR3000-abcdefghijkl"
        + struct.pack(">QQQIIIiH", 0, 100, 0, event, 0, 9, num_want, port)
        + options
    )


def udp():
    t = "udp_request"
    write(t, "connect", struct.pack(">QII", MAGIC, 0, 42))
    write(t, "announce", announce())
    write(t, "announce_bep41", announce(options=b"\x01\x02\x09/announce\x7f\x01x\x00"))
    write(t, "announce_bad_event", announce(event=9))
    write(t, "announce_truncated_option", announce(options=b"\x02\x10/a"))
    hashes = b"".join(bytes([i]) * 20 for i in range(3))
    write(t, "scrape", struct.pack(">QII", 5, 2, 6) + hashes)
    write(t, "response_announce", struct.pack(">IIIII", 1, 7, 1800, 1, 0) + b"\x7f\x00\x00\x01\x1a\xe1")
    write(t, "response_error", struct.pack(">II", 3, 7) + b"bad port")


def pct(b):
    return "".join("%{:02X}".format(c) for c in b)


def http():
    t = "http_request"
    # The first byte picks the settings (see the target).
    ann = (
        "/announce?info_hash=" + pct(b"\xab" * 20) + "&peer_id=-TR3000-abcdefghijkl"
        "&port=6881&uploaded=1&downloaded=2&left=3&event=started&numwant=20"
        "&compact=0&no_peer_id=1&key=k1&trackerid=t&ip=10.0.0.1"
    )
    write(t, "announce", "\x0b" + f"GET {ann} HTTP/1.1\r\nHost: t\r\n\r\n")
    write(t, "announce_passkey", "\x1b" + "GET /abc/announce?info_hash=" + pct(b"\x01" * 20)
          + "&peer_id=" + "x" * 20 + "&port=1&left=0 HTTP/1.0\r\nX-Real-IP: 192.0.2.1\r\n\r\n")
    scr = "/scrape?" + "&".join("info_hash=" + pct(bytes([i]) * 20) for i in range(3))
    write(t, "scrape_pipelined", "\x2b" + f"GET {scr} HTTP/1.1\r\nConnection: keep-alive\r\n\r\nGET /scrape HTTP/1.1\r\n\r\n")
    write(t, "post", "\x03POST /announce HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd")
    write(t, "partial", "\x03GET /announce?info_hash=%AB%AB")


def config():
    t = "config"
    write(t, "full", open(os.path.join(HERE, "..", "tracker.toml")).read())
    write(t, "small", '[udp]\naddresses = ["127.0.0.1:6969", "[::1]:6969"]\nmax_scrape_torrents = 10\n'
          '[http]\nreal_ip_header = "X-Real-IP"\ntrusted_proxies = ["127.0.0.1"]\n'
          '[swarm]\npeer_timeout = 3600\nmax_torrents = 5\n[log]\nlevel = "debug"\n')
    write(t, "bad_value", "[workers]\nsocket_workers = 0\n")
    write(t, "cross_key", "[swarm]\npeer_timeout = 10\n[announce]\ninterval = 20\n")


def swarm():
    t = "swarm_ops"
    # Settings: timeout, default numwant, max numwant, max peers, max torrents.
    head = bytes([10, 50, 60, 0x80, 0])

    def step(op, hash_, addr, arg):
        return bytes([op, hash_ << 6 | addr, arg])

    # Thirty leechers then thirty seeders on one torrent (past the size that
    # gets an index), a scrape, the clock past the timeout, a full clean.
    s = b"".join(step(2, 1, i, 0xFF) for i in range(30))
    s += b"".join(step(2 | 8, 1, 30 + i, 0xFF) for i in range(30))
    s += step(5, 1, 0, 0) + step(7, 0, 0, 40) + step(7, 0, 0, 0)
    write(t, "grow_and_expire", head + s)
    # IPv6 and IPv4 peers, completions, stops, a partial clean.
    s = b"".join(step(2 | 16, 2, i, 5) for i in range(6))
    s += b"".join(step(2, 2, i, 5) for i in range(6))
    s += step(1 | 8, 2, 1, 0) + step(1 | 8 | 16, 2, 1, 0) + step(3, 2, 2, 0)
    s += step(7, 0, 0, 20) + step(6, 0, 0, 3) + step(0, 2, 3, 0)
    write(t, "families", head + s)
    # Small limits: 3 peers a torrent, 1 torrent.
    s = b"".join(step(2, h, i, 0) for h in range(2) for i in range(5))
    write(t, "limits", bytes([10, 5, 5, 3, 1]) + s)


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


def snapshot_file(torrents, peer_ids=False, unit=22, shards=2):
    """A snapshot (see src/snapshot/format.rs): torrents is a list of
    (info hash, completed, [(address bytes, seeder, units left)])."""
    import zlib

    head = b"SWARMDST" + struct.pack("<HHHHQI", 1, int(peer_ids), unit, 0, 1_800_000_000, shards)
    head += struct.pack("<I", zlib.crc32(head))
    body = varint(0) + varint(len(torrents))
    peers = 0
    for info_hash, completed, ps in torrents:
        v4 = [p for p in ps if len(p[0]) == 6]
        v6 = [p for p in ps if len(p[0]) == 18]
        body += info_hash + varint(completed) + varint(len(v4) << 1 | (len(v6) > 0))
        if v6:
            body += varint(len(v6))
        for addr, seeder, left in v4 + v6:
            body += addr + bytes([left | (0x80 if seeder else 0)])
            if peer_ids:
                body += b"-TR3000-" + addr[:12].ljust(12, b"x")
        peers += len(ps)
    section = b"T" + struct.pack("<II", len(body), zlib.crc32(body)) + body
    end = varint(1) + varint(len(torrents)) + varint(peers)
    return head + section + b"E" + struct.pack("<II", len(end), zlib.crc32(end)) + end


def snapshot():
    t = "snapshot"
    v4 = lambda i: bytes([10, 0, 0, i, 0x1A, 0xE1])
    small = [
        (b"\x01" * 20, 3, [(v4(1), True, 100), (v4(2), False, 5)]),
        (b"\x02" * 20, 0, [(v4(3), False, 127), (bytes(range(18)), True, 9)]),
        (b"\x03" * 20, 7, []),
    ]
    write(t, "small", snapshot_file(small))
    write(t, "peer_ids", snapshot_file(small, peer_ids=True))
    big = [(b"\x09" * 20, 0, [(v4(i), i % 3 == 0, 50) for i in range(40)])]
    write(t, "indexed_swarm", snapshot_file(big, unit=1, shards=1))
    write(t, "truncated", snapshot_file(small)[:-5])


def token():
    """Token-shaped inputs: URL data with a JWT in the path or the query,
    an alg:none header, and a token that is only dots."""
    import base64
    def b64(obj):
        return base64.urlsafe_b64encode(obj.encode()).rstrip(b"=")
    header = b64('{"alg":"RS256","kid":"2011-04-29","typ":"JWT"}')
    none = b64('{"alg":"none"}')
    claims = b64('{"iss":"reg","aud":"swarmd","exp":4102444800,"infohash":"' + "ab" * 20 + '"}')
    jwt = header + b"." + claims + b"." + b64("not a signature")
    write("token", "path", b"/announce/" + jwt)
    write("token", "query", b"/announce?jwt=" + jwt)
    write("token", "alg_none", b"/announce?jwt=" + none + b"." + claims + b".")
    write("token", "dots", b"/announce/..")


if __name__ == "__main__":
    udp()
    http()
    config()
    swarm()
    snapshot()
    token()
