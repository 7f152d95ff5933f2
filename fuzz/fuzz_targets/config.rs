//! `tracker.toml` parsing on any text: it never panics, and a file it
//! refuses is refused with a message that starts with the file's name and,
//! when one line is at fault, that line (`fuzz.toml:3: reason`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmd::Config;

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, ORIGIN) {
        Ok(config) => {
            // What start-up derives from an accepted file can't panic either.
            let _ = config.swarm_config();
        }
        Err(e) => check_error(text, &e.to_string()),
    }
});

fn check_error(text: &str, e: &str) {
    let rest = e
        .strip_prefix(ORIGIN)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or_else(|| panic!("error does not start with the origin: {e:?}"));
    let reason = match rest.strip_prefix(' ') {
        // A check across several keys: no one line to name.
        Some(reason) => reason,
        None => {
            let (line, reason) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("no line and reason: {e:?}"));
            let line: usize = line
                .parse()
                .unwrap_or_else(|_| panic!("line is not a number: {e:?}"));
            let lines = text.matches('\n').count() + 1;
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e:?}");
            reason
        }
    };
    assert!(!reason.trim().is_empty(), "no reason: {e:?}");
}
