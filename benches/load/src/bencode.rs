//! Just enough bencode reading for the HTTP checks in `http_wire`: values are
//! validated and walked in place, without building a tree. The tracker's
//! `protocol::bencode` only writes (a tracker never reads bencode), so this
//! reader is the load generator's own.

/// Deeper nesting than any tracker response has is refused rather than
/// followed, so a hostile body can't exhaust the stack.
const MAX_DEPTH: u32 = 16;

/// Where the well-formed value starting at `pos` ends, if it is one.
fn value_end(b: &[u8], pos: usize, depth: u32) -> Option<usize> {
    match *b.get(pos)? {
        b'i' => {
            let end = pos + 1 + b.get(pos + 1..)?.iter().position(|&c| c == b'e')?;
            parse_int(&b[pos + 1..end])?;
            Some(end + 1)
        }
        b'0'..=b'9' => {
            let colon = pos + b[pos..].iter().position(|&c| c == b':')?;
            let len: usize = std::str::from_utf8(&b[pos..colon]).ok()?.parse().ok()?;
            let end = colon.checked_add(1)?.checked_add(len)?;
            (end <= b.len()).then_some(end)
        }
        b'l' | b'd' if depth < MAX_DEPTH => {
            let dict = b[pos] == b'd';
            let mut at = pos + 1;
            let mut item = 0usize;
            while *b.get(at)? != b'e' {
                // Dictionary keys are byte strings.
                if dict && item % 2 == 0 && !b[at].is_ascii_digit() {
                    return None;
                }
                at = value_end(b, at, depth + 1)?;
                item += 1;
            }
            // A key without a value is not a dictionary.
            (!dict || item % 2 == 0).then_some(at + 1)
        }
        _ => None,
    }
}

fn parse_int(digits: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(digits).ok()?;
    // Bencode forbids leading zeros and "-0"; `parse` would take them.
    let bare = s.strip_prefix('-').unwrap_or(s);
    if bare.is_empty() || (bare.starts_with('0') && s != "0") {
        return None;
    }
    s.parse().ok()
}

/// The value of `i<n>e` spanning all of `v`.
pub fn int(v: &[u8]) -> Option<i64> {
    let digits = v.strip_prefix(b"i")?.strip_suffix(b"e")?;
    parse_int(digits)
}

/// The bytes of `<len>:<bytes>` spanning all of `v`.
pub fn bytes(v: &[u8]) -> Option<&[u8]> {
    if !v.first()?.is_ascii_digit() {
        return None;
    }
    let colon = v.iter().position(|&c| c == b':')?;
    let len: usize = std::str::from_utf8(&v[..colon]).ok()?.parse().ok()?;
    let rest = &v[colon + 1..];
    (rest.len() == len).then_some(rest)
}

/// The items of a list spanning all of the (validated) input.
pub struct List<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> List<'a> {
    pub fn new(v: &'a [u8]) -> Option<List<'a>> {
        (v.first() == Some(&b'l') && value_end(v, 0, 0) == Some(v.len()))
            .then_some(List { b: v, at: 1 })
    }
}

impl<'a> Iterator for List<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.b.get(self.at) == Some(&b'e') {
            return None;
        }
        let end = value_end(self.b, self.at, 1)?;
        let item = &self.b[self.at..end];
        self.at = end;
        Some(item)
    }
}

/// The (key, value) pairs of a dictionary spanning all of the input,
/// each value as its encoded bytes. Checked whole when made, so walking
/// it can't fail.
pub struct Dict<'a>(List<'a>);

impl<'a> Dict<'a> {
    pub fn new(v: &'a [u8]) -> Option<Dict<'a>> {
        (v.first() == Some(&b'd') && value_end(v, 0, 0) == Some(v.len()))
            .then_some(Dict(List { b: v, at: 1 }))
    }
}

impl<'a> Iterator for Dict<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let key = bytes(self.0.next()?)?;
        Some((key, self.0.next()?))
    }
}
