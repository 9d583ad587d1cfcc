//! Log lines on stderr, in a form that suits where stderr goes.
//!
//! - On a terminal or into a file: `[2026-12-01T04:45:23.123Z INFO  hnvswitch::hnv] text`,
//!   env_logger's usual form with millisecond timestamps.
//! - Into the systemd journal (the service unit): `<6>hnvswitch::hnv: text`. The
//!   `<N>` prefix is the syslog priority, which journald reads into the entry's
//!   `PRIORITY` (so `journalctl -p warning` works) and strips from the message;
//!   no timestamp, since the journal stamps every line itself.
//!
//! The journal form is chosen when `JOURNAL_STREAM` names the device and inode
//! of our stderr (systemd sets it for a unit's stdout/stderr stream; a child
//! whose stderr was redirected elsewhere keeps the variable but not the
//! inode), or when `HNV_LOG_FORMAT=journal`; `HNV_LOG_FORMAT=plain` forces the
//! usual form. `RUST_LOG` sets the level as before (default `info`).

use std::io::Write as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Timestamp, level and target in brackets (env_logger's default form).
    Plain,
    /// `<N>target: text`, syslog priority prefix, no timestamp.
    Journal,
}

/// The syslog priority of a log level: error 3, warning 4, info 6, debug and trace 7.
pub fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// The format for `HNV_LOG_FORMAT` (`forced`), `JOURNAL_STREAM` (`journal_stream`)
/// and stderr's device and inode (`stderr_id`, none when it cannot be read).
pub fn choose(forced: Option<&str>, journal_stream: Option<&str>, stderr_id: Option<(u64, u64)>) -> Format {
    match forced.map(str::trim) {
        Some("journal") => return Format::Journal,
        Some("plain") => return Format::Plain,
        _ => {}
    }
    let Some(js) = journal_stream else { return Format::Plain };
    // "DEV:INODE", both decimal (systemd.exec(5)).
    let named = js.split_once(':').and_then(|(d, i)| Some((d.trim().parse::<u64>().ok()?, i.trim().parse::<u64>().ok()?)));
    match (named, stderr_id) {
        (Some(n), Some(s)) if n == s => Format::Journal,
        // Set but stderr cannot be checked: trust the variable.
        (Some(_), None) => Format::Journal,
        _ => Format::Plain,
    }
}

/// Device and inode of file descriptor 2, read through `/proc/self/fd/2`.
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((m.dev(), m.ino()))
}

/// The format this process should use (see the module docs).
pub fn detect() -> Format {
    let forced = std::env::var("HNV_LOG_FORMAT").ok();
    let js = std::env::var("JOURNAL_STREAM").ok();
    choose(forced.as_deref(), js.as_deref(), if js.is_some() { stderr_id() } else { None })
}

/// Install the logger (level from `RUST_LOG`, default `info`) in the detected format.
pub fn init() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match detect() {
        Format::Plain => {
            b.format_timestamp_millis();
        }
        Format::Journal => {
            b.format(|buf, r| {
                // One journal entry per line: continuation lines would lose their priority.
                let text = r.args().to_string().replace('\n', " ");
                writeln!(buf, "<{}>{}: {}", syslog_priority(r.level()), r.target(), text)
            });
        }
    }
    b.init();
}

/// The final `error: ...` line a command prints on stderr: with the journal's
/// `<3>` (error) prefix when logging goes to the journal, so that it is not
/// filed at the stream's default priority (info).
pub fn error_line(message: &str) -> String {
    match detect() {
        Format::Journal => format!("<3>error: {message}"),
        Format::Plain => format!("error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_only_when_the_stream_is_our_stderr_or_forced() {
        assert_eq!(choose(None, None, None), Format::Plain);
        assert_eq!(choose(None, Some("8:12345"), Some((8, 12345))), Format::Journal);
        // Inherited by a child whose stderr now goes to a file.
        assert_eq!(choose(None, Some("8:12345"), Some((8, 999))), Format::Plain);
        assert_eq!(choose(None, Some("8:12345"), None), Format::Journal);
        assert_eq!(choose(None, Some("garbage"), Some((8, 12345))), Format::Plain);
        assert_eq!(choose(Some("journal"), None, None), Format::Journal);
        assert_eq!(choose(Some("plain"), Some("8:12345"), Some((8, 12345))), Format::Plain);
        assert_eq!(choose(Some("auto"), Some("8:1"), Some((8, 1))), Format::Journal);
    }

    #[test]
    fn priorities_are_syslogs() {
        assert_eq!(syslog_priority(log::Level::Error), 3);
        assert_eq!(syslog_priority(log::Level::Warn), 4);
        assert_eq!(syslog_priority(log::Level::Info), 6);
        assert_eq!(syslog_priority(log::Level::Debug), 7);
        assert_eq!(syslog_priority(log::Level::Trace), 7);
    }
}
