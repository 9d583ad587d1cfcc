//! Big-endian reads and writes at the start of a slice.
//!
//! Each function panics when the slice is shorter than the value; callers
//! pass `&buf[field::X]` ranges they have already checked.

#[inline]
pub(crate) fn read_u16(d: &[u8]) -> u16 {
    u16::from_be_bytes([d[0], d[1]])
}

#[inline]
pub(crate) fn read_u32(d: &[u8]) -> u32 {
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[inline]
pub(crate) fn write_u16(d: &mut [u8], v: u16) {
    d[..2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn write_u32(d: &mut [u8], v: u32) {
    d[..4].copy_from_slice(&v.to_be_bytes());
}
