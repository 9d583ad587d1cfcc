//! The control protocol's framing and its errors.
//!
//! One JSON object per line each way: a [`Request`] (`hnv_policy::api`) or a
//! [`Framing`] line, answered by one [`Response`] line. A transaction groups
//! change requests into one validated change (`hnvctl apply`):
//!
//! ```text
//! {"op":"begin"}                                  -> {"ok":true}
//! {"op":"replace_record","record":{...}}          -> {"ok":true}    (queued)
//! {"op":"remove_record","vsid":5001,"ca":"..."}   -> {"ok":true}    (queued)
//! {"op":"commit"}                                 -> {"ok":true,"generation":N} or {"ok":false,"error":"..."}
//! ```
//!
//! Inside a transaction only record, route and ACL changes are queued (at
//! most [`MAX_TRANSACTION`]); `show` is answered as usual. Any other line, a
//! malformed one, or one over the limit fails the transaction: every later
//! line up to `commit` or `abort` is answered with that error and ignored,
//! so a client that writes ahead never has a change applied on its own.
//! `commit` applies the queued changes as one transaction (all or none, one
//! publication); `abort` or a closed connection discards them.
//!
//! Every refusal the server answers is a [`CtlError`], rendered on one line
//! by [`CtlError::into_response`].

use crate::service::{ChangeError, OneLine, PortChangeError};
use hnv_policy::api::{Request, Response};
use serde::{Deserialize, Serialize};

/// Longest request line accepted.
pub const MAX_LINE: usize = 1 << 20;
/// Most changes one transaction may queue.
pub const MAX_TRANSACTION: usize = 1 << 20;

/// A line that opens, commits or aborts a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Framing {
    /// Start queueing changes.
    Begin,
    /// Apply the queued changes as one transaction.
    Commit,
    /// Discard the queued changes.
    Abort,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A request.
    Request(Request),
    /// Transaction framing.
    Framing(Framing),
}

/// Parse one line (its newline included or not).
///
/// # Errors
/// [`CtlError::Malformed`]: not UTF-8, or neither a request nor framing.
pub fn parse_line(line: &[u8]) -> Result<Line, CtlError> {
    let text = std::str::from_utf8(line).map_err(|e| CtlError::Malformed(format!("not UTF-8 ({e})")))?;
    let text = text.trim();
    match serde_json::from_str::<Request>(text) {
        Ok(r) => Ok(Line::Request(r)),
        Err(e) => framing(text).map(Line::Framing).ok_or_else(|| CtlError::Malformed(e.to_string())),
    }
}

/// `{"op":"begin"}`, `{"op":"commit"}` or `{"op":"abort"}`, and nothing else in the object.
fn framing(text: &str) -> Option<Framing> {
    let o = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok()?;
    if o.len() != 1 {
        return None;
    }
    serde_json::from_value(serde_json::Value::Object(o)).ok()
}

/// Why the control server refused a line.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Not UTF-8 JSON of a request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A line longer than [`MAX_LINE`].
    #[error("request longer than {MAX_LINE} bytes: connection closed")]
    TooLong,
    /// A change of records, routes or ACL rules was refused.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A port change was refused.
    #[error(transparent)]
    Ports(#[from] PortChangeError),
    /// Port changes wait for the capture to stop (its file names ports by index).
    #[error("a capture to {0} is running and names ports by index: stop it before adding or removing ports")]
    CaptureRunning(String),
    /// This switch has no port-change path (tests, or not running).
    #[error("this switch cannot change ports while running")]
    NoPortChanges,
    /// The main thread no longer takes port changes.
    #[error("the switch is stopping")]
    Stopping,
    /// The main thread did not answer a port change in time.
    #[error("the switch did not apply the port change in time (it may still be applied; see hnvctl show ports)")]
    PortTimeout,
    /// `capture_stop` without a capture.
    #[error("no capture is running")]
    NoCapture,
    /// The capture stopped, but its file was not finished cleanly.
    #[error("capture stopped, but its file may be incomplete: {0}")]
    CaptureIncomplete(String),
    /// A capture request was refused.
    #[error("{0}")]
    Capture(String),
    /// A transaction line was refused, or the transaction failed earlier.
    #[error("{0}")]
    Transaction(String),
}

impl CtlError {
    /// The error as a response: its message on one line.
    pub fn into_response(self) -> Response {
        Response::error(OneLine(&self).to_string())
    }
}

impl From<CtlError> for Response {
    fn from(e: CtlError) -> Response {
        e.into_response()
    }
}

/// A response as one protocol line (newline included).
pub fn response_line(resp: &Response) -> String {
    let mut text = serde_json::to_string(resp).unwrap_or_else(|_| "{\"ok\":false}".into());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_requests_parse_and_anything_else_is_malformed() {
        assert_eq!(parse_line(b"{\"op\":\"begin\"}\n").unwrap(), Line::Framing(Framing::Begin));
        assert_eq!(parse_line(b" {\"op\":\"commit\"} ").unwrap(), Line::Framing(Framing::Commit));
        assert!(matches!(parse_line(b"{\"op\":\"show\",\"what\":\"records\"}").unwrap(), Line::Request(Request::Show { .. })));
        for bad in [&b"{\"op\":\"begin\",\"x\":1}"[..], b"{\"op\":\"reboot\"}", b"\xff", b"{"] {
            let e = parse_line(bad).unwrap_err();
            assert!(matches!(e, CtlError::Malformed(_)), "{e}");
            assert!(e.to_string().starts_with("malformed request: "), "{e}");
        }
        // A multi-line policy error is answered on one line.
        let e = hnv_policy::parse(&hnv_policy::example::BLUE_RED_HOST1.replace("00:15:5d:01:00:07", "x").replace("vsid = 5001", "vsid = 1"), "p").unwrap_err();
        let r = CtlError::Change(ChangeError::Refused(e.into())).into_response();
        assert!(!r.ok && !r.error.unwrap().contains('\n'));
    }
}
