//! The binary's logger: lines on stderr, and under journald each line
//! prefixed with its syslog priority (`<4>` for a warning), so that
//! `journalctl -p warning` finds swarmd's warnings and errors. On a terminal
//! or in a file the lines are as env_logger writes them.

use std::io::Write;

/// The syslog priority journald gives a line that starts with `<N>`
/// (sd-daemon(3)): error 3, warning 4, info 6, debug 7. Trace has no
/// priority of its own below debug.
pub fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Installs the logger. The level is `level`, and can change on reload
/// (through `log::set_max_level`), unless `RUST_LOG` is set, which then
/// decides alone. `journal`: stderr is journald's stream (see
/// [`crate::service::stderr_is_journal`]).
pub fn init(level: log::LevelFilter, journal: bool) {
    let mut builder = env_logger::Builder::new();
    let from_env = std::env::var("RUST_LOG").ok();
    match &from_env {
        Some(spec) => {
            builder.parse_filters(spec);
        }
        // Let everything through the logger's own filter; the global max
        // level (which a reload can change) does the filtering.
        None => {
            builder.filter_level(log::LevelFilter::Trace);
        }
    }
    if journal {
        // journald stamps every line itself, and reads the priority from
        // the `<N>` prefix; without it every line would be info (6).
        builder.format(|buf, record| {
            writeln!(
                buf,
                "<{}>[{:<5} {}] {}",
                syslog_priority(record.level()),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    let _ = builder.try_init();
    if from_env.is_none() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_syslog_ones() {
        assert_eq!(syslog_priority(log::Level::Error), 3);
        assert_eq!(syslog_priority(log::Level::Warn), 4);
        assert_eq!(syslog_priority(log::Level::Info), 6);
        assert_eq!(syslog_priority(log::Level::Debug), 7);
        assert_eq!(syslog_priority(log::Level::Trace), 7);
    }
}
