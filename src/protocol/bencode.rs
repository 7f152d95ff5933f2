//! The few bencode writers the tracker needs (BEP 3). Writing only: the
//! tracker never reads bencode.

/// Appends the decimal digits of `n`.
/// No allocation: this runs for every number of every response.
pub fn decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    unsigned(out, n.unsigned_abs());
}

/// Appends the decimal digits of `n`, with no allocation.
pub fn unsigned(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `i<n>e`
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    decimal(out, n);
    out.push(b'e');
}

/// `<len>:<bytes>`
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    decimal(out, b.len() as i64);
    out.push(b':');
    out.extend_from_slice(b);
}

pub fn key_int(out: &mut Vec<u8>, key: &[u8], n: i64) {
    bytes(out, key);
    int(out, n);
}

pub fn key_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    bytes(out, key);
    bytes(out, value);
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes() {
        let mut out = Vec::new();
        super::key_int(&mut out, b"a", -3);
        super::key_bytes(&mut out, b"bc", b"xyz");
        assert_eq!(out, b"1:ai-3e2:bc3:xyz");
        out.clear();
        super::int(&mut out, i64::MIN);
        super::int(&mut out, 0);
        super::int(&mut out, 1234567890);
        assert_eq!(out, b"i-9223372036854775808ei0ei1234567890e");
    }
}
