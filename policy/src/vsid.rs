//! The Virtual Subnet ID.
//!
//! Contract: a [`Vsid`] value always holds a VSID in the valid range
//! `4096..=16777214` (`0x1000..=0xFFFFFE`, hnv.md §1). `0..=0xFFF` is reserved,
//! `0xFFFFFF` is reserved for vendor-specific NVE-to-NVE use; neither can be
//! represented. Construction is fallible and never panics.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A validated 24-bit Virtual Subnet ID in `4096..=16777214`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vsid(u32);

/// Why a number is not a valid [`Vsid`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VsidError {
    /// The value lies outside `4096..=16777214`.
    #[error("VSID {0} is outside the valid range 4096..=16777214 (0..=4095 and 16777215 are reserved)")]
    OutOfRange(i64),
    /// The text is not a decimal number.
    #[error("'{0}' is not a decimal VSID")]
    NotANumber(String),
}

impl Vsid {
    /// The smallest valid VSID (0x1000).
    pub const MIN: u32 = 0x1000;
    /// The largest valid VSID (0xFFFFFE).
    pub const MAX: u32 = 0xFF_FFFE;

    /// Validates `value` as a VSID.
    pub const fn new(value: u32) -> Result<Vsid, VsidError> {
        if value >= Self::MIN && value <= Self::MAX {
            Ok(Vsid(value))
        } else {
            Err(VsidError::OutOfRange(value as i64))
        }
    }

    /// Validates a wide integer (as read from a policy file) as a VSID.
    pub fn from_i64(value: i64) -> Result<Vsid, VsidError> {
        match u32::try_from(value) {
            Ok(v) => Vsid::new(v),
            Err(_) => Err(VsidError::OutOfRange(value)),
        }
    }

    /// The numeric value (24 significant bits).
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The three big-endian octets of the VSID, as carried in the GRE key.
    pub const fn to_be_bytes24(self) -> [u8; 3] {
        let b = self.0.to_be_bytes();
        [b[1], b[2], b[3]]
    }
}

impl fmt::Display for Vsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Vsid {
    type Err = VsidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.parse::<i64>() {
            Ok(v) => Vsid::from_i64(v),
            Err(_) => Err(VsidError::NotANumber(s.to_string())),
        }
    }
}

impl TryFrom<u32> for Vsid {
    type Error = VsidError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Vsid::new(value)
    }
}

impl From<Vsid> for u32 {
    fn from(v: Vsid) -> u32 {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bounds() {
        assert!(Vsid::new(4095).is_err());
        assert_eq!(Vsid::new(4096).map(Vsid::get), Ok(4096));
        assert_eq!(Vsid::new(16_777_214).map(Vsid::get), Ok(16_777_214));
        assert!(Vsid::new(16_777_215).is_err());
        assert!(Vsid::new(0).is_err());
        assert!(Vsid::from_i64(-1).is_err());
        assert!(Vsid::from_i64(1 << 40).is_err());
    }

    #[test]
    fn parse_and_display() {
        assert_eq!("5001".parse::<Vsid>().map(|v| v.to_string()), Ok("5001".to_string()));
        assert!(matches!("x".parse::<Vsid>(), Err(VsidError::NotANumber(_))));
        assert!(matches!("12".parse::<Vsid>(), Err(VsidError::OutOfRange(12))));
        assert_eq!(Vsid::new(0x12_3456).map(Vsid::to_be_bytes24), Ok([0x12, 0x34, 0x56]));
    }
}
