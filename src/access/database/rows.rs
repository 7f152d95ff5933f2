//! Turning the rows of the site's two queries into lists: an info hash per
//! row of `torrents_query`, a `(passkey, user)` per row of
//! `passkeys_query`. A bad row is named by its query, its number and its
//! value, so a site's operator can find it; one bad row fails the whole
//! load (the old lists stay), as a bad line of a file does.

use std::collections::HashMap;

use crate::access::file::valid_key;
use crate::protocol::InfoHash;

/// One cell of a row, as the session read it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cell<'a> {
    Null,
    Bytes(&'a [u8]),
    Text(&'a str),
    Int(i64),
    /// A column of a type the queries can't return; its type's name.
    Other(&'a str),
}

impl std::fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Bytes(b) => {
                f.write_str("'\\x")?;
                for byte in b.iter().take(40) {
                    write!(f, "{byte:02x}")?;
                }
                let more = if b.len() > 40 { "..." } else { "" };
                write!(f, "{more}' ({} bytes)", b.len())
            }
            Cell::Text(t) => {
                let short: String = t.chars().take(80).collect();
                let more = if short.len() < t.len() { "..." } else { "" };
                write!(f, "{short:?}{more}")
            }
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Other(ty) => write!(f, "a value of type {ty}"),
        }
    }
}

/// The lists a load read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Lists {
    pub(crate) hashes: Vec<InfoHash>,
    /// None: passkeys are off.
    pub(crate) passkeys: Option<Vec<(String, Option<String>)>>,
}

impl Lists {
    pub(crate) fn summary(&self) -> String {
        match &self.passkeys {
            Some(k) => format!("{} info hashes, {} passkeys", self.hashes.len(), k.len()),
            None => format!("{} info hashes", self.hashes.len()),
        }
    }
}

/// An info hash from the first column of a `torrents_query` row.
pub(crate) fn info_hash(cell: Cell) -> Result<InfoHash, String> {
    let bad = |why: &str| Err(format!("{cell}: {why}"));
    match cell {
        // A v2 (SHA-256) hash: clients announce its first 20 bytes.
        Cell::Bytes(b) if b.len() == 20 || b.len() == 32 => {
            let mut h = [0; 20];
            h.copy_from_slice(&b[..20]);
            Ok(InfoHash(h))
        }
        Cell::Bytes(_) => bad("an info hash is 20 bytes (or 32 for v2)"),
        Cell::Text(t) if (t.len() == 40 || t.len() == 64) && t.is_ascii() => {
            match InfoHash::from_hex(&t[..40]) {
                Some(h) if t.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
                _ => bad("not hexadecimal"),
            }
        }
        Cell::Text(_) => bad("an info hash is 40 hex characters (or 64 for v2)"),
        Cell::Null => bad("no info hash"),
        Cell::Int(_) | Cell::Other(_) => bad("return bytea or text"),
    }
}

/// A `(passkey, user)` from a `passkeys_query` row.
pub(crate) fn passkey(key: Cell, user: Cell) -> Result<(String, Option<String>), String> {
    let key = match key {
        Cell::Text(k) if valid_key(k) => k.to_owned(),
        Cell::Text(_) => {
            return Err(format!(
                "bad passkey {key}: use 1 to 128 characters from A-Z a-z 0-9 - . _ ~"
            ))
        }
        _ => return Err(format!("passkey {key}: return the passkey as text")),
    };
    let user = match user {
        Cell::Null => None,
        Cell::Text(u) if !u.is_empty() && u.len() <= 256 => Some(u.to_owned()),
        Cell::Int(i) => Some(i.to_string()),
        _ => {
            return Err(format!(
                "user {user}: return text (1 to 256 bytes), an integer or NULL"
            ))
        }
    };
    Ok((key, user))
}

/// Collects the rows of one query: the good ones, and the count and first
/// of the bad ones.
pub(crate) struct Collect<T> {
    query: &'static str,
    row: u64,
    pub(crate) good: Vec<T>,
    pub(crate) rejected: u64,
    first: Option<String>,
    /// Passkeys seen, with their row, to refuse a key listed twice.
    keys: HashMap<String, u64>,
}

impl<T> Collect<T> {
    pub(crate) fn new(query: &'static str) -> Collect<T> {
        Collect {
            query,
            row: 0,
            good: Vec::new(),
            rejected: 0,
            first: None,
            keys: HashMap::new(),
        }
    }

    /// The next row's value, or why it is bad.
    pub(crate) fn push(&mut self, value: Result<T, String>) {
        self.row += 1;
        match value {
            Ok(v) => self.good.push(v),
            Err(why) => {
                self.rejected += 1;
                if self.first.is_none() {
                    self.first = Some(format!("{} row {}: {why}", self.query, self.row));
                }
            }
        }
    }

    /// The good rows, or the first bad one (and how many more there were).
    pub(crate) fn finish(self) -> Result<Vec<T>, String> {
        match self.first {
            None => Ok(self.good),
            Some(first) if self.rejected == 1 => Err(first),
            Some(first) => Err(format!("{first} (and {} more bad rows)", self.rejected - 1)),
        }
    }
}

impl Collect<(String, Option<String>)> {
    /// A passkey row, refused when its key came before.
    pub(crate) fn push_passkey(&mut self, key: Cell, user: Cell) {
        let row = self.row + 1;
        let value = passkey(key, user).and_then(|(k, u)| match self.keys.get(&k) {
            Some(first) => Err(format!(
                "passkey {key} is listed twice (first on row {first})"
            )),
            None => {
                self.keys.insert(k.clone(), row);
                Ok((k, u))
            }
        });
        self.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hashes_as_bytea_or_hex() {
        assert_eq!(info_hash(Cell::Bytes(&[7; 20])), Ok(InfoHash([7; 20])));
        assert_eq!(
            info_hash(Cell::Bytes(&[7; 32])),
            Ok(InfoHash([7; 20])),
            "v2 is truncated"
        );
        let hex = "ab".repeat(20);
        assert_eq!(info_hash(Cell::Text(&hex)), Ok(InfoHash([0xab; 20])));
        assert_eq!(
            info_hash(Cell::Text(&"AB".repeat(32))),
            Ok(InfoHash([0xab; 20]))
        );
        let e = info_hash(Cell::Bytes(&[1; 19])).unwrap_err();
        assert!(e.contains("'\\x0101") && e.contains("19 bytes"), "{e}");
        let e = info_hash(Cell::Text(&"g".repeat(40))).unwrap_err();
        assert!(e.contains("not hexadecimal"), "{e}");
        // Multi-byte text must not be sliced mid-character.
        assert!(info_hash(Cell::Text(&"é".repeat(20))).is_err());
        assert!(info_hash(Cell::Null).is_err());
        assert!(info_hash(Cell::Other("int4")).unwrap_err().contains("int4"));
    }

    #[test]
    fn bad_rows_are_named_by_query_row_and_value() {
        let mut c = Collect::new("torrents_query");
        c.push(info_hash(Cell::Bytes(&[1; 20])));
        c.push(info_hash(Cell::Text("abc")));
        c.push(info_hash(Cell::Null));
        assert_eq!(c.rejected, 2);
        let e = c.finish().unwrap_err();
        assert!(
            e.starts_with("torrents_query row 2: \"abc\"") && e.ends_with("(and 1 more bad rows)"),
            "{e}"
        );

        let mut c = Collect::new("passkeys_query");
        c.push_passkey(Cell::Text("k1"), Cell::Int(7));
        c.push_passkey(Cell::Text("k2"), Cell::Null);
        assert_eq!(
            c.good,
            [("k1".into(), Some("7".into())), ("k2".into(), None)]
        );
        c.push_passkey(Cell::Text("k1"), Cell::Text("bob"));
        let e = c.finish().unwrap_err();
        assert!(
            e.starts_with("passkeys_query row 3: ") && e.contains("first on row 1"),
            "{e}"
        );
        let mut c = Collect::new("passkeys_query");
        c.push_passkey(Cell::Text("not a key"), Cell::Null);
        let e = c.finish().unwrap_err();
        assert!(e.contains("row 1: bad passkey \"not a key\""), "{e}");
    }
}
