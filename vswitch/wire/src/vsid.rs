//! The Virtual Subnet ID: the 24-bit tenant subnet identifier of NVGRE.
//!
//! RFC 7637 §4 reserves VSIDs 0 through 0xFFF (4095) and 0xFFFFFF, so a
//! [`Vsid`] built with [`Vsid::new`] always lies in `4096..=0xFF_FFFE`.
//! [`Vsid::new_unchecked`] skips that check for values known to be valid
//! (constants, values read back from a validated table); it still masks to
//! 24 bits so the type never holds more than the wire field can carry.

use core::fmt;
use core::str::FromStr;

use crate::{Error, Result};

/// A Virtual Subnet ID, valid by construction (see the module docs).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Vsid(u32);

impl Vsid {
    /// The smallest valid VSID, 4096.
    pub const MIN: Vsid = Vsid(0x1000);
    /// The largest valid VSID, 0xFFFFFE.
    pub const MAX: Vsid = Vsid(0xFF_FFFE);

    /// Construct a VSID, rejecting the reserved values.
    ///
    /// # Errors
    /// [`Error::VsidReserved`] when `value` is outside `4096..=0xFF_FFFE`.
    pub const fn new(value: u32) -> Result<Vsid> {
        if value >= Self::MIN.0 && value <= Self::MAX.0 {
            Ok(Vsid(value))
        } else {
            Err(Error::VsidReserved)
        }
    }

    /// Construct a VSID without the reserved-range check (masked to 24 bits).
    pub const fn new_unchecked(value: u32) -> Vsid {
        Vsid(value & 0xFF_FFFF)
    }

    /// Return the numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vsid {
    type Error = Error;

    fn try_from(value: u32) -> Result<Vsid> {
        Vsid::new(value)
    }
}

impl From<Vsid> for u32 {
    fn from(vsid: Vsid) -> u32 {
        vsid.0
    }
}

impl fmt::Display for Vsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Vsid {
    type Err = Error;

    /// Parse a decimal VSID.
    ///
    /// # Errors
    /// [`Error::Malformed`] when `s` is not a decimal `u32`, and
    /// [`Error::VsidReserved`] when the value is reserved.
    fn from_str(s: &str) -> Result<Vsid> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        let value: u32 = s.parse().map_err(|_| Error::Malformed)?;
        Vsid::new(value)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_range() {
        assert_eq!(Vsid::new(0), Err(Error::VsidReserved));
        assert_eq!(Vsid::new(4095), Err(Error::VsidReserved));
        assert_eq!(Vsid::new(4096), Ok(Vsid::MIN));
        assert_eq!(Vsid::new(0xFF_FFFE), Ok(Vsid::MAX));
        assert_eq!(Vsid::new(0xFF_FFFF), Err(Error::VsidReserved));
        assert_eq!(Vsid::new(0x0100_0000), Err(Error::VsidReserved));
        assert_eq!(Vsid::new(5001).map(Vsid::get), Ok(5001));
        assert_eq!(Vsid::try_from(5001u32).map(u32::from), Ok(5001));
    }

    #[test]
    fn test_unchecked_masks() {
        assert_eq!(Vsid::new_unchecked(0x0100_1234).get(), 0x1234);
        assert_eq!(Vsid::new_unchecked(7).get(), 7);
    }

    #[test]
    fn test_display_fromstr() {
        let v = Vsid::new(5001).unwrap();
        assert_eq!(v.to_string(), "5001");
        assert_eq!("5001".parse::<Vsid>(), Ok(v));
        assert_eq!("100".parse::<Vsid>(), Err(Error::VsidReserved));
        assert_eq!("".parse::<Vsid>(), Err(Error::Malformed));
        assert_eq!("+5001".parse::<Vsid>(), Err(Error::Malformed));
        assert_eq!("0x1000".parse::<Vsid>(), Err(Error::Malformed));
        assert_eq!("99999999999".parse::<Vsid>(), Err(Error::Malformed));
    }
}
