//! A client for the stats endpoint: one GET per connection, as a scraper
//! does it. The read timeout only turns a hang into a failure.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `request` as is and returns (status, body); the server closes the
/// connection after one answer.
pub fn request(
    addr: SocketAddr,
    request: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {out:?}")))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `GET path`, failing the test on any error or after `super::TIMEOUT`.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        super::TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}
