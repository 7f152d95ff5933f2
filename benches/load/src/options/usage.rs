//! The text of `swarmd-load --help`.

pub const USAGE: &str = "\
swarmd-load: load generator for BEP 15 (UDP) and BEP 3 (HTTP) trackers, and a
do-nothing UDP responder. Traffic never leaves the machine: every address must
be a loopback one.

USAGE:
    swarmd-load [udp] --target ADDR [OPTIONS]
    swarmd-load http --target ADDR [--connections N] [--pipeline K] [OPTIONS]
    swarmd-load responder --bind ADDR [--duration SECS] [--peers N]
    swarmd-load hashes [--torrents N] [--seed N | --aquatic-load-test]
    swarmd-load ping --target ADDR [--http] [--torrent N] [--wait SECS]
    swarmd-load cores [--cpus A,B] [--trips N]
    swarmd-load jwks --token-key FILE.der [--token-alg ALG] [--token-kid KID]

udp (the default): simulate many peers on many torrents against a tracker.
    --target ADDR           tracker address, e.g. 127.0.0.1:6969 or [::1]:6969
    --torrents N            torrents [1000000]
    --peers N               peers, each with a stable peer id, key and port [2000000]
    --skew S                Zipf exponent of torrent popularity [1.0]
    --duration SECS         whole run, warm-up included, at most 3600 [10];
                            figures cover the time after the warm-up
    --warmup SECS           first seconds left out of the figures [1]
    --threads N             load threads [1]
    --sockets N             sockets (client addresses) per thread [4]
    --rate R                requests per second in all, 0 = as fast as answers come [0]
    --requests N            stop after sending N requests in all, 0 = no limit [0]
    --inflight N            most requests in flight per socket [64]
    --connect W             weight of extra connect requests [0]
    --announce W            weight of announce requests [100]
    --scrape W              weight of scrape requests [1]
    --scrape-hashes N       a scrape asks about 1..=N info hashes [10]
    --numwant N             peers asked for per announce, -1 = tracker's choice [30]
    --seeder-prob P         share of peers that start as seeders [0.75]
    --stop-prob P           chance an announce is `stopped` (the next is `started`) [0.01]
    --complete-prob P       chance a leecher's announce is `completed` [0.01]
    --peer-order ORDER      random; sequential (every peer once before any twice);
                            or once (every peer once, then the run ends) [random]
    --timeout-ms MS         a request unanswered this long is a timeout [1000]
    --ipv4-clients-from NET bind socket i to address i+1 of NET (within 127.0.0.0/8),
                            so the tracker sees many client IPs; `none` binds
                            127.0.0.1 [127.0.0.0/8]
    --ipv4-clients-per-24 N bind instead socket i to address i%N+1 of the
                            (i/N)-th /24 of NET: N client IPs per /24, for
                            trackers that group peers by subnet [off]
    --seed N                seed of the info hashes, peer ids and choices [1]
    --json FILE             also write every figure as JSON to FILE
    --quiet                 no progress lines on stderr
    --token-key FILE        send a signed token (JWT) with every announce, one
                            per torrent, signed at start with this key: a DER
                            private key, RSA as PKCS#1 (openssl rsa -traditional
                            -outform DER) or EC P-256 as PKCS#8 (openssl pkcs8
                            -topk8 -nocrypt -outform DER), or the HS256 secret;
                            over UDP as BEP 41 URL data `/announce?jwt=TOKEN`
                            (options of up to 255 bytes), over HTTP `&jwt=`
    --token-alg ALG         RS256, ES256 or HS256 [RS256]
    --token-kid KID         the tokens' `kid` header
    --token-issuer S        their `iss` claim (none when not given)
    --token-audience S      their `aud` claim (none when not given)

http: the same peers, torrents, mix and events over HTTP/1.1 keep-alive
connections (GET /announce with compact=1, GET /scrape). Takes the options of
`udp` except --sockets, --inflight and --connect, and these:
    --connections N         TCP connections in all, spread over the threads [256]
    --pipeline K            requests in flight per connection (HTTP pipelining);
                            1 waits for each answer before the next [1]
    A connection the tracker closes, or one whose oldest request times out,
    is opened again at once (counted as a reconnect); with --ipv4-clients-from
    connection i binds address i+1 of the net, as sockets do in `udp`. Each
    answer must be status 200 with a Content-Length and a bencoded dictionary:
    `interval` and whole peer entries, or `files`; a `failure reason` counts
    as an error, anything else as invalid.

responder: answer every request with the smallest valid response, one
recv_from/send_to per datagram on one thread: the machine's ceiling.
    --bind ADDR             address to listen on, e.g. 127.0.0.1:6969
    --duration SECS         stop after this long [3600]
    --peers N               answer announces with up to N made-up peers (as
                            many as wanted), so answers are as long as a
                            tracker's [0, at most 200]

ping: wait until the tracker answers a connect and then an announce (of one
peer outside the simulated ones, to a torrent of `udp`); exit 0 then, 1 if it
has not after --wait SECS. For scripts that start trackers.
    --target ADDR
    --http                  announce over HTTP (GET /announce) instead
    --torrent N             which torrent to announce [0]
    --wait SECS             [30]
    --seed N                [1]

hashes: print the info hashes `udp` uses (hex, one a line), e.g. for a whitelist.
    --torrents N            [1000000]
    --seed N                [1]
    --aquatic-load-test     print those of aquatic_udp_load_test 0.9 instead

jwks: print the JWK Set of the public key of --token-key (RS256, ES256), for
the tracker's access.token.jwks_file. Takes --token-key, --token-alg and
--token-kid as `udp` does.

cores: how long a cache line takes to go from one CPU to another and back,
with a thread pinned to each (the median of 5 runs of --trips round trips).
On a VM whose virtual CPUs the host moves about, this tells which state the
machine is in: benches/compare.sh records it before and after every run.
Prints `cpus=A,B trips=N round_trip_ns=T`.
    --cpus A,B              the two CPUs [0,1]
    --trips N               round trips per run [20000]
";
