//! The stats endpoint's routes: a request head in, an answer out (or, for
//! one torrent's counts, a question to a swarm worker first). No I/O here.

use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;

use super::render::{self, Rates};
use super::view::TrackerView;

/// An answer, written whole and then the connection is closed.
pub(crate) struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    pub(crate) fn text(status: u16, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }

    fn json(body: String) -> Answer {
        Answer {
            status: 200,
            content_type: "application/json",
            body,
        }
    }

    /// The bytes on the wire: head and body.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            _ => "Service Unavailable",
        };
        let allow = if self.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// What a request asks for.
pub(crate) enum Route {
    Answer(Answer),
    /// One torrent's counts, which only its swarm worker knows.
    Torrent(InfoHash),
    /// A subscription to `/events`, for these torrents (empty: all).
    Events(Vec<InfoHash>),
}

/// The answer to a request too large to be one.
pub(crate) fn too_large() -> Answer {
    Answer::text(431, "request too large\n")
}

/// Routes a complete request head (without its blank line).
pub(crate) fn route(head: &[u8], view: &TrackerView, rates: &Rates, max_top: usize) -> Route {
    let head = String::from_utf8_lossy(head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    if method != "GET" {
        return Route::Answer(Answer::text(405, "only GET\n"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let answer = match path {
        "/metrics" => Answer {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: render::prometheus(&view.stats),
        },
        "/stats" => Answer::json(render::json(&view.stats, rates)),
        "/passkeys" => Answer::json(render::passkeys_json(view.passkey_stats())),
        "/healthz" => {
            if view.stats.healthy() {
                Answer::text(200, "ok\n")
            } else {
                Answer::text(503, "a worker has stopped\n")
            }
        }
        "/torrents" => {
            let n = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("top="))
                .map_or(Some(10), |v| v.parse::<usize>().ok());
            match n {
                Some(n) => Answer::json(render::torrents_json(view.top(n.min(max_top)))),
                None => Answer::text(400, "top must be a number\n"),
            }
        }
        "/events" => match super::events::filters(query) {
            Some(filter) => return Route::Events(filter),
            None => Answer::text(400, "expected info_hash=<40 or 64 hex digits>, repeated\n"),
        },
        p if p.starts_with("/torrents/") => match InfoHash::from_hex(&p["/torrents/".len()..]) {
            Some(h) => return Route::Torrent(h),
            None => Answer::text(400, "expected 40 hex digits\n"),
        },
        _ => Answer::text(
            404,
            "routes: /metrics /stats /torrents?top=N /torrents/<hex> /passkeys /healthz /events\n",
        ),
    };
    Route::Answer(answer)
}

/// The answer to `/torrents/<hex>` once its swarm worker answered, or did
/// not (None).
pub(crate) fn torrent(h: InfoHash, counts: Option<ScrapeStats>) -> Answer {
    match counts {
        Some(s) => Answer::json(render::torrent_json(h, s).to_string()),
        None => Answer::text(503, "the swarm worker did not answer\n"),
    }
}
