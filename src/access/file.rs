//! Reading the list files: the info-hash list and the passkeys file. Every
//! error names the file, the line and the reason (`path:line: reason`), so
//! an operator can fix a bad line without guessing.

use std::path::Path;

use crate::protocol::InfoHash;

/// A whole file as text; the error names it.
pub(crate) fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// The content of a line without its comment, trimmed (and without the
/// byte-order mark some editors put at the start of a file).
fn content(line: &str) -> &str {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    line.split('#').next().unwrap_or("").trim()
}

/// Parses an info-hash list. `origin` (a path) names the file in errors,
/// which read `origin:line: reason`.
pub(crate) fn parse_info_hashes(text: &str, origin: &str) -> Result<Vec<InfoHash>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = content(line);
        if line.is_empty() {
            continue;
        }
        let fail = |reason: String| format!("{origin}:{}: {reason}", n + 1);
        if line.split_whitespace().nth(1).is_some() {
            return Err(fail("more than one info hash on the line".into()));
        }
        if !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(format!("{line:?} is not hexadecimal")));
        }
        // A v2 (SHA-256) hash: clients announce its first 20 bytes.
        let hex = match line.len() {
            40 => line,
            64 => &line[..40],
            len => {
                return Err(fail(format!(
                    "an info hash is 40 hex characters (or 64 for v2), this is {len}"
                )))
            }
        };
        out.push(InfoHash::from_hex(hex).ok_or_else(|| fail("not an info hash".into()))?);
    }
    Ok(out)
}

pub(crate) fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Parses a passkeys file into `(key, user)` pairs. Errors read
/// `origin:line: reason`.
pub(crate) fn parse_passkeys(
    text: &str,
    origin: &str,
) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = content(line);
        if line.is_empty() {
            continue;
        }
        let fail = |reason: String| format!("{origin}:{}: {reason}", n + 1);
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or_default();
        let user = words.next();
        if words.next().is_some() {
            return Err(fail("expected `key` or `key user`".into()));
        }
        if !valid_key(key) {
            return Err(fail(format!(
                "bad passkey {key:?}: use 1 to 128 characters from A-Z a-z 0-9 - . _ ~"
            )));
        }
        if let Some(first) = seen.insert(key.to_owned(), n + 1) {
            return Err(fail(format!(
                "passkey {key:?} is listed twice (first on line {first})"
            )));
        }
        out.push((key.to_owned(), user.map(str::to_owned)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "0123456789abcdef0123456789ABCDEF01234567";

    #[test]
    fn info_hash_lists_with_comments_and_blank_lines() {
        let text = format!(
            "# allowed torrents\n\n{H1}\n  {}  # a comment\n{}\n",
            "f".repeat(40),
            "e".repeat(64)
        );
        let hashes = parse_info_hashes(&format!("\u{feff}{text}"), "list").unwrap();
        assert_eq!(hashes.len(), 3);
        assert_eq!(hashes[0], InfoHash::from_hex(H1).unwrap());
        assert_eq!(hashes[1], InfoHash([0xff; 20]));
        assert_eq!(hashes[2], InfoHash([0xee; 20]), "a v2 hash is truncated");
        assert_eq!(parse_info_hashes("", "list").unwrap(), vec![]);
    }

    #[test]
    fn bad_info_hash_lines_name_file_and_line() {
        let e = parse_info_hashes(&format!("{H1}\n\n0123\n"), "a.txt").unwrap_err();
        assert!(e.starts_with("a.txt:3: ") && e.contains("40 hex"), "{e}");
        let e = parse_info_hashes(&format!("# x\n{}\n", "g".repeat(40)), "a.txt").unwrap_err();
        assert!(
            e.starts_with("a.txt:2: ") && e.contains("not hexadecimal"),
            "{e}"
        );
        let e = parse_info_hashes(&format!("{H1} {H1}\n"), "a.txt").unwrap_err();
        assert!(
            e.starts_with("a.txt:1: ") && e.contains("more than one"),
            "{e}"
        );
        // Multi-byte text must not be sliced mid-character.
        let e = parse_info_hashes(&"é".repeat(32), "a.txt").unwrap_err();
        assert!(e.starts_with("a.txt:1: "), "{e}");
    }

    #[test]
    fn passkey_files_with_and_without_users() {
        let keys = parse_passkeys("# keys\nabc123 alice\n\nK-._~9   # no user\n", "k").unwrap();
        assert_eq!(
            keys,
            vec![
                ("abc123".to_string(), Some("alice".to_string())),
                ("K-._~9".to_string(), None)
            ]
        );
    }

    #[test]
    fn bad_passkey_lines_name_file_and_line() {
        let e = parse_passkeys("a b c\n", "k.txt").unwrap_err();
        assert!(e.starts_with("k.txt:1: ") && e.contains("key user"), "{e}");
        let e = parse_passkeys("ok\nnot/ok\n", "k.txt").unwrap_err();
        assert!(
            e.starts_with("k.txt:2: ") && e.contains("bad passkey"),
            "{e}"
        );
        let e = parse_passkeys(&format!("{}\n", "k".repeat(129)), "k.txt").unwrap_err();
        assert!(e.starts_with("k.txt:1: "), "{e}");
        let e = parse_passkeys("one\ntwo\n\none bob\n", "k.txt").unwrap_err();
        assert!(
            e.starts_with("k.txt:4: ") && e.contains("first on line 1"),
            "{e}"
        );
    }
}
