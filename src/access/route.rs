//! Where a request goes and which passkey it carries, read from its target:
//! the path and query of an HTTP request line, or the BEP 41 URL data of a
//! UDP announce (which is the same path and query). One parser serves both,
//! so a key written into a tracker URL works the same over HTTP and UDP.
//! No I/O and no allocation.

/// What a path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Announce,
    Scrape,
}

impl Route {
    /// The route a path segment names. `.php`: the URLs of old PHP trackers,
    /// still in many torrents.
    fn named(segment: &str) -> Option<Route> {
        match segment {
            "announce" | "announce.php" => Some(Route::Announce),
            "scrape" | "scrape.php" => Some(Route::Scrape),
            _ => None,
        }
    }
}

/// A request target taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// None: neither announce nor scrape.
    pub(crate) route: Option<Route>,
    /// From `/<route>/<key>` or `/<key>/<route>`; never empty, and only
    /// with a route.
    pub(crate) passkey: Option<&'a str>,
    /// What follows the first `?`, without it; empty when there is none.
    pub(crate) query: &'a str,
}

/// Takes a target apart: `/announce`, `/announce/<key>`, `/<key>/announce`
/// (and the same for scrape), each maybe followed by `?query`. Slashes
/// around the path are ignored; a path of three segments or more has no
/// route.
///
/// A `#` ends the path (a URL's fragment, RFC 3986; a BEP 41 client may
/// copy it from the tracker URL) and, before any `?`, the query too. After
/// the `?` it is kept in the query, because lax HTTP clients send the
/// binary `info_hash` without percent-encoding and one of its bytes may be
/// a `#`.
pub(crate) fn parse_target(target: &str) -> Target<'_> {
    let target = origin_form(target);
    // Both are ASCII: byte offsets are character boundaries.
    let end = memchr::memchr2(b'?', b'#', target.as_bytes()).unwrap_or(target.len());
    let query = target[end..].strip_prefix('?').unwrap_or("");
    // No leading or trailing slash is left, so both sides of a split are
    // non-empty unless the path had an empty segment (then it has three).
    let path = target[..end].trim_matches('/');
    let (route, passkey) = match path.split_once('/') {
        None => (Route::named(path), None),
        Some((_, second)) if second.contains('/') => (None, None),
        Some((first, second)) => match (Route::named(first), Route::named(second)) {
            (Some(route), _) => (Some(route), Some(second)),
            (None, Some(route)) => (Some(route), Some(first)),
            (None, None) => (None, None),
        },
    };
    Target {
        route,
        passkey,
        query,
    }
}

/// The path and query of an absolute-form target (`http://host/path?q`),
/// which RFC 9112 (3.2.2) says a server must accept, as proxies send it; any
/// other target as it is. The host part is not checked: swarmd answers for
/// whatever name it is reached by.
fn origin_form(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        let n = scheme.len();
        let matches = target
            .as_bytes()
            .get(..n)
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme.as_bytes()));
        if matches {
            // The scheme is ASCII, so `n` is a character boundary.
            let rest = &target[n..];
            return match rest.find(['/', '?']) {
                Some(i) => &rest[i..],
                None => "/",
            };
        }
    }
    target
}

/// The passkey in BEP 41 URL data, None when there is none (or the data is
/// not UTF-8, which no listed key can match).
#[cfg(test)]
fn url_passkey(url_data: &[u8]) -> Option<&str> {
    parse_target(std::str::from_utf8(url_data).ok()?).passkey
}

/// The announce token in a query: the value of its first `jwt=` parameter,
/// as it is (a JWT is made of characters a URL needs not encode), None when
/// absent or empty.
pub(crate) fn query_token(query: &str) -> Option<&str> {
    // The cuts are next to ASCII bytes (`&`, `=`): character boundaries.
    query.get(token_range(query.as_bytes())?)
}

/// [`query_token`] of a query still in bytes (BEP 41 URL data).
#[inline]
pub(crate) fn query_token_bytes(query: &[u8]) -> Option<&[u8]> {
    query.get(token_range(query)?)
}

fn token_range(query: &[u8]) -> Option<std::ops::Range<usize>> {
    // `memchr`, not `split('&')`: the value is a whole token, hundreds of
    // bytes that `split` looked at one by one (measured: 30 % of a cached
    // RS256 token check).
    let mut start = 0;
    loop {
        let rest = query.get(start..)?;
        let end = memchr::memchr(b'&', rest).map_or(query.len(), |i| start + i);
        if rest.starts_with(b"jwt=") {
            let value = start + 4..end;
            return (!value.is_empty()).then_some(value);
        }
        if end == query.len() {
            return None;
        }
        start = end + 1;
    }
}

/// BEP 41 URL data cut into its path and its query: what follows the first
/// `?`, unless a `#` comes before it (then there is no query), as
/// [`parse_target`] takes the same text apart. Bytes, so that the query's
/// token is found without reading the whole of it as text.
#[inline]
pub(crate) fn split_url_data(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr2(b'?', b'#', data) {
        Some(i) if data[i] == b'?' => (&data[..i], Some(&data[i + 1..])),
        Some(i) => (&data[..i], None),
        None => (data, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_targets_route_like_origin_form() {
        for (absolute, origin) in [
            ("http://tracker.example:6969/announce?a=1", "/announce?a=1"),
            ("HTTP://t/scrape", "/scrape"),
            ("https://t/KEY/announce?x", "/KEY/announce?x"),
            ("http://t?x=1", "?x=1"),
            ("http://t", "/"),
        ] {
            assert_eq!(parse_target(absolute), parse_target(origin), "{absolute}");
        }
        // Not a scheme this parser knows: left alone (and not routed).
        assert_eq!(parse_target("ftp://t/announce").route, None);
    }
    use proptest::prelude::*;

    fn parts(target: &str) -> (Option<Route>, Option<&str>, &str) {
        let t = parse_target(target);
        (t.route, t.passkey, t.query)
    }

    #[test]
    fn routes_with_passkeys() {
        use Route::{Announce, Scrape};
        for (target, want) in [
            ("/announce", (Some(Announce), None, "")),
            ("/announce?a=1&b", (Some(Announce), None, "a=1&b")),
            ("/announce.php?", (Some(Announce), None, "")),
            ("//announce//", (Some(Announce), None, "")),
            ("/announce/abc", (Some(Announce), Some("abc"), "")),
            ("/abc/announce", (Some(Announce), Some("abc"), "")),
            (
                "/abc/announce?x=1&y=2",
                (Some(Announce), Some("abc"), "x=1&y=2"),
            ),
            ("/announce/abc/?x", (Some(Announce), Some("abc"), "x")),
            ("/announce/announce", (Some(Announce), Some("announce"), "")),
            ("/scrape", (Some(Scrape), None, "")),
            ("/scrape/abc", (Some(Scrape), Some("abc"), "")),
            (
                "/abc/scrape.php?info_hash=x",
                (Some(Scrape), Some("abc"), "info_hash=x"),
            ),
            // A fragment ends the path; after the `?` it is query text.
            ("/announce/abc#frag", (Some(Announce), Some("abc"), "")),
            ("/announce#x?y", (Some(Announce), None, "")),
            ("/announce?a=#b", (Some(Announce), None, "a=#b")),
            // Not a route.
            ("", (None, None, "")),
            ("/", (None, None, "")),
            ("?announce", (None, None, "announce")),
            ("/x/y", (None, None, "")),
            ("/a/b/announce", (None, None, "")),
            ("/announce//abc", (None, None, "")),
            ("/announce/a/b", (None, None, "")),
            ("/Announce", (None, None, "")),
            ("/stats", (None, None, "")),
        ] {
            assert_eq!(parts(target), want, "{target:?}");
        }
    }

    #[test]
    fn passkeys_from_bep41_url_data() {
        assert_eq!(url_passkey(b"/announce/abc"), Some("abc"));
        assert_eq!(url_passkey(b"/abc/announce"), Some("abc"));
        assert_eq!(url_passkey(b"/abc/announce?x=1&y=2"), Some("abc"));
        assert_eq!(url_passkey(b"/announce/abc/?x"), Some("abc"));
        assert_eq!(url_passkey(b"/announce.php/abc"), Some("abc"));
        assert_eq!(url_passkey(b"/announce"), None);
        assert_eq!(url_passkey(b"/announce/"), None);
        assert_eq!(url_passkey(b""), None);
        assert_eq!(url_passkey(b"/a/b/announce"), None);
        assert_eq!(url_passkey(b"/x/y"), None);
        assert_eq!(url_passkey(b"/announce/\xff"), None);
    }

    #[test]
    fn tokens_from_the_query() {
        assert_eq!(query_token("jwt=a.b.c"), Some("a.b.c"));
        assert_eq!(query_token("info_hash=x&jwt=a.b.c&port=1"), Some("a.b.c"));
        assert_eq!(query_token("jwt=&jwt=x"), None, "the first one counts");
        assert_eq!(query_token("xjwt=a"), None);
        assert_eq!(query_token(""), None);
        let t = parse_target("/announce?port=1&jwt=h.p.s#x");
        assert_eq!(query_token(t.query), Some("h.p.s#x"));
        assert_eq!(query_token_bytes(b"a=1&jwt=\xff.t&b"), Some(&b"\xff.t"[..]));
        assert_eq!(query_token_bytes(b"a=1&"), None);
    }

    #[test]
    fn url_data_splits_where_a_target_does() {
        assert_eq!(
            split_url_data(b"/announce/k?jwt=t"),
            (&b"/announce/k"[..], Some(&b"jwt=t"[..]))
        );
        assert_eq!(
            split_url_data(b"/announce?jwt=t#x?y"),
            (&b"/announce"[..], Some(&b"jwt=t#x?y"[..]))
        );
        assert_eq!(
            split_url_data(b"/announce#x?jwt=t"),
            (&b"/announce"[..], None)
        );
        assert_eq!(split_url_data(b"/announce"), (&b"/announce"[..], None));
        assert_eq!(split_url_data(b""), (&b""[..], None));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = url_passkey(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let t = parse_target(&text);
            prop_assert!(text.ends_with(t.query));
            if let Some(key) = t.passkey {
                prop_assert!(t.route.is_some());
                prop_assert!(!key.is_empty());
                prop_assert!(!key.contains(['/', '?', '#']));
            }
        }

        #[test]
        fn never_panics_on_path_like_input(target in "[/?#a-z.&=%]{0,40}") {
            let t = parse_target(&target);
            prop_assert!(target.ends_with(t.query));
            prop_assert!(t.passkey.is_none() || t.route.is_some());
            // URL data taken apart as bytes finds what the text parser does.
            let (path, query) = split_url_data(target.as_bytes());
            let path = std::str::from_utf8(path).map(parse_target).ok();
            prop_assert_eq!(path.and_then(|p| p.passkey), t.passkey);
            prop_assert_eq!(query.and_then(query_token_bytes), query_token(t.query).map(str::as_bytes));
        }

        #[test]
        fn a_key_in_either_place_is_found(
            key in "[A-Za-z0-9._~-]{1,40}",
            route in prop_oneof![Just("announce"), Just("scrape.php")],
            query in "[a-z0-9=&%#]{0,20}",
        ) {
            prop_assume!(Route::named(&key).is_none());
            let want = Route::named(route);
            for target in [format!("/{route}/{key}?{query}"), format!("/{key}/{route}?{query}")] {
                prop_assert_eq!(parts(&target), (want, Some(key.as_str()), query.as_str()));
            }
        }
    }
}
