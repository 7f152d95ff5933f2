//! A small HTTP tracker client and bencode reader for the tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use swarmd::protocol::http::url_encode;
use swarmd::protocol::InfoHash;

use super::TIMEOUT;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl Bencode {
    pub fn parse(b: &[u8]) -> Bencode {
        let (v, rest) = Self::parse_one(b);
        assert!(rest.is_empty(), "trailing bytes after bencode");
        v
    }

    fn parse_one(b: &[u8]) -> (Bencode, &[u8]) {
        match b[0] {
            b'i' => {
                let end = b.iter().position(|&c| c == b'e').unwrap();
                let n = std::str::from_utf8(&b[1..end]).unwrap().parse().unwrap();
                (Bencode::Int(n), &b[end + 1..])
            }
            b'l' => {
                let mut rest = &b[1..];
                let mut items = Vec::new();
                while rest[0] != b'e' {
                    let (v, r) = Self::parse_one(rest);
                    items.push(v);
                    rest = r;
                }
                (Bencode::List(items), &rest[1..])
            }
            b'd' => {
                let mut rest = &b[1..];
                let mut map = BTreeMap::new();
                let mut last: Option<Vec<u8>> = None;
                while rest[0] != b'e' {
                    let (k, r) = Self::parse_one(rest);
                    let Bencode::Bytes(k) = k else {
                        panic!("dict key not a string")
                    };
                    assert!(last.as_ref().is_none_or(|l| *l < k), "dict keys not sorted");
                    last = Some(k.clone());
                    let (v, r) = Self::parse_one(r);
                    map.insert(k, v);
                    rest = r;
                }
                (Bencode::Dict(map), &rest[1..])
            }
            _ => {
                let colon = b.iter().position(|&c| c == b':').unwrap();
                let len: usize = std::str::from_utf8(&b[..colon]).unwrap().parse().unwrap();
                let start = colon + 1;
                (
                    Bencode::Bytes(b[start..start + len].to_vec()),
                    &b[start + len..],
                )
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(m) => m.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> i64 {
        match self.get(key) {
            Some(Bencode::Int(n)) => *n,
            other => panic!("{key}: {other:?} in {self:?}"),
        }
    }

    pub fn bytes(&self, key: &str) -> &[u8] {
        match self.get(key) {
            Some(Bencode::Bytes(b)) => b,
            other => panic!("{key}: {other:?}"),
        }
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn bencode(&self) -> Bencode {
        Bencode::parse(&self.body)
    }
}

/// One keep-alive connection to the tracker.
pub struct HttpClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> HttpClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        HttpClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// A connection from `local` (any loopback address: 127.0.0.0/8 is all
    /// this machine's), so a test can be many clients.
    pub fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> std::io::Result<HttpClient> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.bind(&SocketAddr::new(local, 0).into())?;
        socket.connect(&addr.into())?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(HttpClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// One GET, or None if the server closed (or reset) the connection
    /// instead of answering.
    pub fn try_get(&mut self, path: &str) -> Option<HttpResponse> {
        let head = format!("GET {path} HTTP/1.1\r\nHost: tracker\r\n\r\n");
        self.stream.write_all(head.as_bytes()).ok()?;
        self.read_response()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: tracker\r\n\r\n").as_bytes());
        self.read_response().expect("a response")
    }

    /// Reads one response; None if the server closed (or reset) first.
    pub fn read_response(&mut self) -> Option<HttpResponse> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                let status: u16 = head[9..12].parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return Some(HttpResponse {
                        status,
                        headers: head,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 4096];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                // Closed with unread data on the server's side.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read in time: {e}"),
            };
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// True once the server has closed the connection (reads EOF).
    pub fn closed_by_server(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

pub fn announce_path(
    hash: InfoHash,
    peer_id: &[u8; 20],
    port: u16,
    left: u64,
    extra: &str,
) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        url_encode(&hash.0),
        url_encode(peer_id)
    )
}

pub fn scrape_path(hashes: &[InfoHash]) -> String {
    let q: Vec<String> = hashes
        .iter()
        .map(|h| format!("info_hash={}", url_encode(&h.0)))
        .collect();
    format!("/scrape?{}", q.join("&"))
}
