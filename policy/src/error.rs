//! Policy errors.
//!
//! Contract: every error names the file (`origin`). Validation errors also name
//! the record (e.g. `lookup[3] (ca 10.0.0.7, vsid 5001)`) and the field, and
//! are collected, not stopped at the first: [`PolicyError::Invalid`] holds all
//! of them and displays one per line, each line
//! `origin: record: field 'name': message`. TOML syntax and type errors are
//! reported as [`PolicyError::Syntax`] with a 1-based line and column.

use std::fmt;

use thiserror::Error;

/// One validation failure: which record, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The record, e.g. `ports[1] (blue1)` or `host.provider_addresses[0] (192.168.4.11)`.
    pub record: String,
    /// The field name as written in the file, e.g. `pa`.
    pub field: String,
    /// What is wrong, one line.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: field '{}': {}", self.record, self.field, self.message)
    }
}

/// Errors from loading, parsing or validating a policy.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{origin}: cannot read policy file: {source}")]
    Io {
        /// The file.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or does not have the policy file's shape
    /// (unknown field, wrong type, missing `host`).
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line (0 when the parser gave no position).
        line: usize,
        /// 1-based column in characters (0 when unknown).
        column: usize,
        /// The parser's message, one line.
        message: String,
    },
    /// The file parsed but broke one or more policy rules.
    #[error("{}", DisplayInvalid(origin, errors))]
    Invalid {
        /// The file.
        origin: String,
        /// Every failure found, in file order of the checks.
        errors: Vec<FieldError>,
    },
}

struct DisplayInvalid<'a>(&'a str, &'a [FieldError]);

impl fmt::Display for DisplayInvalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.1.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", self.0, e)?;
        }
        Ok(())
    }
}

impl PolicyError {
    /// The validation failures (empty for I/O and syntax errors).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            PolicyError::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Builds a [`PolicyError::Syntax`] from a TOML error, converting its byte
    /// span in `text` to a line and column.
    pub(crate) fn from_toml(err: &toml::de::Error, text: &str, origin: &str) -> PolicyError {
        let (line, column) = match err.span() {
            Some(span) => line_col(text, span.start),
            None => (0, 0),
        };
        let message = err.message().trim().replace('\n', "; ");
        PolicyError::Syntax { origin: origin.to_string(), line, column, message }
    }
}

/// 1-based (line, column) of byte `offset` in `text`; column counts characters.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let col_bytes = &bytes[line_start..offset];
    // Count characters: bytes that are not UTF-8 continuation bytes.
    let column = col_bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 5), (2, 3));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 1000), (3, 2));
    }

    #[test]
    fn invalid_display_one_per_line() {
        let e = PolicyError::Invalid {
            origin: "p.toml".into(),
            errors: vec![
                FieldError { record: "ports[0] (a)".into(), field: "mac".into(), message: "bad".into() },
                FieldError { record: "lookup[1] (ca 10.0.0.7, vsid 5001)".into(), field: "pa".into(), message: "worse".into() },
            ],
        };
        assert_eq!(e.to_string(), "p.toml: ports[0] (a): field 'mac': bad\np.toml: lookup[1] (ca 10.0.0.7, vsid 5001): field 'pa': worse");
        assert_eq!(e.field_errors().len(), 2);
    }
}
