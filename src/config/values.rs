//! Value types of the configuration that check themselves as they are
//! read: a log level by name, an integer of at least 1.

use serde::Deserialize;

/// A log level that deserializes from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LogLevel(pub log::LevelFilter);

impl TryFrom<String> for LogLevel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(LogLevel).map_err(|_| {
            format!("unknown log level {s:?}: use off, error, warn, info, debug or trace")
        })
    }
}

/// An integer that must be at least 1 (and fit a u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Positive(pub u32);

impl TryFrom<i64> for Positive {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v < 1 || v > u32::MAX as i64 {
            Err(format!(
                "{v} is out of range: it must be from 1 to {}",
                u32::MAX
            ))
        } else {
            Ok(Positive(v as u32))
        }
    }
}

impl Positive {
    pub fn get(self) -> u32 {
        self.0
    }
}
