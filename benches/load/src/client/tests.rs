//! The UDP load thread's tests: request matching, late answers and the receive buffer.

use super::*;

fn expect(kind: Kind) -> Expect {
    Expect { kind, count: None }
}

#[test]
fn transaction_ids_match_once_then_are_unknown() {
    let now = Instant::now();
    let mut f = InFlight::new(2, Duration::from_secs(1), 0xdead_beef, now);
    let a = f.take(expect(Kind::Announce), now).expect("room");
    let b = f.take(expect(Kind::Scrape), now).expect("room");
    assert!(f.take(expect(Kind::Scrape), now).is_none());
    assert_ne!(a, b);
    assert!(matches!(f.complete(b), Match::Found { expect, .. } if expect.kind == Kind::Scrape));
    assert!(matches!(f.complete(b), Match::Unknown));
    assert!(matches!(f.complete(TransactionId(12345)), Match::Unknown));
    assert!(f.has_room());
    assert!(matches!(f.complete(a), Match::Found { .. }));
}

#[test]
fn timeouts_free_slots_and_late_answers_are_recognised() {
    let now = Instant::now();
    let mut f = InFlight::new(1, Duration::from_millis(100), 7, now);
    let a = f.take(expect(Kind::Connect), now).expect("room");
    let mut timed_out = Vec::new();
    f.expire(now + Duration::from_millis(50), |k| timed_out.push(k));
    assert!(timed_out.is_empty() && !f.has_room());
    f.expire(now + Duration::from_millis(100), |k| timed_out.push(k));
    assert_eq!(timed_out, [Kind::Connect]);
    // The slot is reused with a new id; the old one's answer is late.
    let b = f
        .take(expect(Kind::Announce), now + Duration::from_millis(100))
        .expect("room");
    assert_ne!(a, b);
    assert!(matches!(f.complete(a), Match::Late));
    assert!(matches!(f.complete(b), Match::Found { .. }));
    // An answered request does not time out later.
    f.expire(now + Duration::from_secs(5), |k| timed_out.push(k));
    assert_eq!(timed_out.len(), 1);
}

#[test]
fn receive_buffer_fits_the_largest_answer() {
    assert!(recv_buffer_size(30) >= 20 + 30 * 18);
    assert!(recv_buffer_size(2000) >= 20 + 2000 * 18);
    assert!(recv_buffer_size(-1) >= 2048);
}
