//! Judging one UDP tracker response against the request it answers: right
//! action, peer list in whole 6- or 18-byte entries and no longer than asked
//! for, 12 bytes of scrape figures per info hash asked about. Pure functions,
//! no I/O. The kinds, expectations and verdicts are shared with the HTTP
//! checks in `http_wire`.

use swarmd::protocol::udp::{ConnectionId, Response};

/// The kinds of request the load generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connect = 0,
    Announce = 1,
    Scrape = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Connect, Kind::Announce, Kind::Scrape];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Announce => "announce",
            Kind::Scrape => "scrape",
        }
    }
}

/// What a request leads the generator to expect back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub kind: Kind,
    /// Announce: the most peers the response may carry (`None` when the
    /// request left the number to the tracker). Scrape: the number of info
    /// hashes asked about.
    pub count: Option<u16>,
}

/// Why a response was judged wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a BEP 15 response at all (too short, unknown action, a scrape not in
    /// 12-byte steps, ...).
    Unparsable,
    /// UDP: its transaction id matches no request in flight. HTTP: a response
    /// on a connection with no request in flight.
    UnknownTransaction,
    /// A valid response of another kind than the request.
    WrongAction,
    /// The peer list is not a whole number of 6-byte (IPv4) or 18-byte (IPv6)
    /// entries.
    PeerListLength,
    /// More peers than the announce asked for.
    TooManyPeers,
    /// UDP: not one 12-byte entry per info hash asked about. HTTP: more
    /// `files` than info hashes asked about.
    ScrapeLength,
    /// HTTP: a status other than 200 (tracker errors are `200 OK` with a
    /// `failure reason`).
    HttpStatus,
    /// HTTP: a head that does not parse, or no usable Content-Length.
    HttpHead,
    /// HTTP: a body that is not one well-formed bencoded dictionary.
    Bencode,
    /// HTTP: a body without `interval` and `peers` (announce) or `files`
    /// (scrape), or with one of the wrong type.
    MissingField,
}

impl Invalid {
    pub const COUNT: usize = Invalid::ALL.len();
    pub const ALL: [Invalid; 10] = [
        Invalid::Unparsable,
        Invalid::UnknownTransaction,
        Invalid::WrongAction,
        Invalid::PeerListLength,
        Invalid::TooManyPeers,
        Invalid::ScrapeLength,
        Invalid::HttpStatus,
        Invalid::HttpHead,
        Invalid::Bencode,
        Invalid::MissingField,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invalid::Unparsable => "unparsable",
            Invalid::UnknownTransaction => "unknown_transaction",
            Invalid::WrongAction => "wrong_action",
            Invalid::PeerListLength => "peer_list_length",
            Invalid::TooManyPeers => "too_many_peers",
            Invalid::ScrapeLength => "scrape_length",
            Invalid::HttpStatus => "http_status",
            Invalid::HttpHead => "http_head",
            Invalid::Bencode => "bencode",
            Invalid::MissingField => "missing_field",
        }
    }
}

/// The verdict on one response whose transaction id matched a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Connected(ConnectionId),
    Announced {
        peers: usize,
    },
    Scraped,
    /// The tracker answered with a BEP 15 error, or an HTTP `failure reason`.
    Error,
    Invalid(Invalid),
}

/// Judges `response` as the answer to a request that expected `expect`.
/// `ipv6` says which peer entry size (18 or 6 bytes) the tracker must use.
pub fn judge(response: &Response, expect: Expect, ipv6: bool) -> Verdict {
    match (response, expect.kind) {
        (Response::Error { .. }, _) => Verdict::Error,
        (Response::Connect { connection_id, .. }, Kind::Connect) => {
            Verdict::Connected(*connection_id)
        }
        (Response::Announce { peers, .. }, Kind::Announce) => {
            let entry = if ipv6 { 18 } else { 6 };
            if peers.len() % entry != 0 {
                return Verdict::Invalid(Invalid::PeerListLength);
            }
            let n = peers.len() / entry;
            match expect.count {
                Some(max) if n > usize::from(max) => Verdict::Invalid(Invalid::TooManyPeers),
                _ => Verdict::Announced { peers: n },
            }
        }
        (Response::Scrape { stats, .. }, Kind::Scrape) => {
            if Some(stats.len()) == expect.count.map(usize::from) {
                Verdict::Scraped
            } else {
                Verdict::Invalid(Invalid::ScrapeLength)
            }
        }
        _ => Verdict::Invalid(Invalid::WrongAction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmd::protocol::udp::{write_announce, write_scrape, ScrapeStats, TransactionId};

    const TID: TransactionId = TransactionId(9);

    fn announce_bytes(peer_bytes: usize) -> Response {
        let mut buf = Vec::new();
        write_announce(&mut buf, TID, 1800, 1, 2, &vec![7u8; peer_bytes]);
        Response::parse(&buf).expect("announce response parses")
    }

    fn announce(max: Option<u16>) -> Expect {
        Expect {
            kind: Kind::Announce,
            count: max,
        }
    }

    #[test]
    fn announce_peer_lists() {
        let r = announce_bytes(6 * 30);
        assert_eq!(
            judge(&r, announce(Some(30)), false),
            Verdict::Announced { peers: 30 }
        );
        assert_eq!(
            judge(&r, announce(Some(29)), false),
            Verdict::Invalid(Invalid::TooManyPeers)
        );
        assert_eq!(
            judge(&r, announce(None), false),
            Verdict::Announced { peers: 30 }
        );
        // 180 bytes are ten IPv6 peers; 20 bytes are neither.
        assert_eq!(
            judge(&r, announce(Some(30)), true),
            Verdict::Announced { peers: 10 }
        );
        assert_eq!(
            judge(&announce_bytes(20), announce(Some(30)), false),
            Verdict::Invalid(Invalid::PeerListLength)
        );
        assert_eq!(
            judge(&announce_bytes(0), announce(Some(0)), true),
            Verdict::Announced { peers: 0 }
        );
    }

    #[test]
    fn scrape_needs_one_entry_per_hash() {
        let mut buf = Vec::new();
        write_scrape(&mut buf, TID, &[ScrapeStats::default(); 3]);
        let r = Response::parse(&buf).expect("scrape response parses");
        let expect = |n| Expect {
            kind: Kind::Scrape,
            count: Some(n),
        };
        assert_eq!(judge(&r, expect(3), false), Verdict::Scraped);
        assert_eq!(
            judge(&r, expect(2), false),
            Verdict::Invalid(Invalid::ScrapeLength)
        );
    }

    #[test]
    fn action_must_match_and_errors_are_errors() {
        let connect = Response::Connect {
            transaction_id: TID,
            connection_id: ConnectionId(5),
        };
        assert_eq!(
            judge(
                &connect,
                Expect {
                    kind: Kind::Connect,
                    count: None
                },
                false
            ),
            Verdict::Connected(ConnectionId(5))
        );
        assert_eq!(
            judge(&connect, announce(Some(30)), false),
            Verdict::Invalid(Invalid::WrongAction)
        );
        let error = Response::Error {
            transaction_id: TID,
            message: b"nope".to_vec(),
        };
        assert_eq!(judge(&error, announce(Some(30)), false), Verdict::Error);
        // opentracker's bare 8-byte answer to a hash outside its whitelist.
        let mut bare = Vec::new();
        bare.extend_from_slice(&1u32.to_be_bytes());
        bare.extend_from_slice(&TID.0.to_be_bytes());
        assert_eq!(Response::parse(&bare), None);
    }
}
