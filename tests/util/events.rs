//! A subscriber of the stats endpoint's `/events` (Server-Sent Events): the
//! head checked, then events and comments one at a time, each waited for
//! until a deadline (the read timeout only bounds one read).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One thing the stream said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sse {
    /// An event: its type (`message` when not named) and its data.
    Event { kind: String, data: String },
    /// A comment line (`: …`), e.g. the heartbeat `: ping`.
    Comment(String),
}

/// A torrent's counts, as an `/events` message carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    pub info_hash: String,
    pub seeders: u64,
    pub leechers: u64,
    pub completed: u64,
}

impl Sse {
    /// The counts of a `message` event; None for anything else.
    pub fn counts(&self) -> Option<Counts> {
        let Sse::Event { kind, data } = self else {
            return None;
        };
        if kind != "message" {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(data).expect("event data is JSON");
        Some(Counts {
            info_hash: v["info_hash"].as_str()?.to_string(),
            seeders: v["seeders"].as_u64()?,
            leechers: v["leechers"].as_u64()?,
            completed: v["completed"].as_u64()?,
        })
    }
}

pub struct Subscriber {
    pub stream: TcpStream,
    /// Read and not yet parsed.
    buf: Vec<u8>,
    /// Bytes read in all, head included.
    pub bytes: usize,
    pub closed: bool,
}

/// `GET path` on the stats endpoint; Ok with the subscriber after a 200
/// with `text/event-stream`, Err(status) otherwise.
pub fn subscribe(addr: SocketAddr, path: &str) -> Result<Subscriber, u16> {
    let s = TcpStream::connect(addr).unwrap();
    send_request(&s, path);
    finish_subscribe(s)
}

/// Sends `GET path`, without reading the answer.
pub fn send_request(mut s: &TcpStream, path: &str) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
}

/// Reads the answer's head on `s` (a request sent).
pub fn finish_subscribe(s: TcpStream) -> Result<Subscriber, u16> {
    let mut sub = Subscriber {
        stream: s,
        buf: Vec::new(),
        bytes: 0,
        closed: false,
    };
    let deadline = Instant::now() + super::TIMEOUT;
    let end = loop {
        if let Some(i) = sub.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        assert!(sub.fill(deadline), "no head before the deadline");
        assert!(!sub.closed || !sub.buf.is_empty(), "closed without a head");
        if sub.closed {
            break sub.buf.len();
        }
    };
    let head = String::from_utf8_lossy(&sub.buf[..end]).to_string();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Err(status);
    }
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/event-stream"), "{head}");
    assert!(
        !lower.contains("content-length"),
        "a stream has no length: {head}"
    );
    sub.buf.drain(..end + 4);
    Ok(sub)
}

impl Subscriber {
    /// Reads once (waiting at most until `deadline`); false if nothing came
    /// by then. Sets `closed` at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.closed {
            return false;
        }
        let wait = left.min(Duration::from_millis(200));
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                true
            }
            Ok(n) => {
                self.bytes += n;
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(_) => {
                self.closed = true;
                true
            }
        }
    }

    /// The next event or comment, waited for until `deadline`; None if
    /// none came by then or the stream ended.
    pub fn next_until(&mut self, deadline: Instant) -> Option<Sse> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..i + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 stream");
                return Some(parse(text.trim_end_matches('\n')));
            }
            if !self.fill(deadline) || (self.closed && !self.buf.windows(2).any(|w| w == b"\n\n")) {
                return None;
            }
        }
    }

    /// The next event or comment within [`super::TIMEOUT`].
    pub fn next(&mut self) -> Option<Sse> {
        self.next_until(Instant::now() + super::TIMEOUT)
    }

    /// Counts events until one satisfies `want`, within
    /// [`super::TIMEOUT`]; returns every count event seen, that one last.
    pub fn counts_until(&mut self, want: impl Fn(&Counts) -> bool) -> Vec<Counts> {
        let deadline = Instant::now() + super::TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let Some(sse) = self.next_until(deadline) else {
                panic!("no wanted event before the deadline; saw {seen:?}");
            };
            if let Some(c) = sse.counts() {
                let done = want(&c);
                seen.push(c);
                if done {
                    return seen;
                }
            }
        }
    }

    /// Everything until the server closes, within `limit`: the last thing
    /// said, and whether the stream ended.
    pub fn read_to_end(&mut self, limit: Duration) -> (Option<Sse>, bool) {
        let deadline = Instant::now() + limit;
        let mut last = None;
        while !self.closed && Instant::now() < deadline {
            match self.next_until(deadline) {
                Some(s) => last = Some(s),
                None => break,
            }
        }
        while let Some(s) = self.next_until(Instant::now()) {
            last = Some(s);
        }
        (last, self.closed)
    }
}

fn parse(block: &str) -> Sse {
    let mut kind = "message".to_string();
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(':') {
            return Sse::Comment(c.trim().to_string());
        } else if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
        }
    }
    Sse::Event {
        kind,
        data: data.join("\n"),
    }
}
