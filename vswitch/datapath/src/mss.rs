//! TCP MSS clamping at encapsulation (`[host] mss_clamp`).
//!
//! Contract: [`clamp`] runs just before a frame is encapsulated. When the
//! template it leaves by has a limit ([`EncapTemplate::mss`], compiled from
//! the host's `mss_clamp` and the uplink MTU), a TCP SYN whose MSS option
//! offers more is lowered to the limit in place, its checksum patched
//! ([`hnv_wire::mss_clamp`]), and counted in `mss_clamped`; every other frame
//! is left as it is. With clamping off (the default) it costs one compare.
//! Never drops, never allocates, never panics.

use crate::deliver::Tally;
use crate::tables::EncapTemplate;
use pmd::PacketBuf;

/// Clamp `p`'s MSS option to what `tpl` allows (see the module contract).
#[inline(always)]
pub fn clamp<B: PacketBuf>(p: &mut B, tpl: &EncapTemplate, tally: &mut Tally) {
    if tpl.mss != 0 && hnv_wire::mss_clamp::clamp(p.data_mut(), tpl.mss).is_some() {
        tally.mss_clamped += 1;
    }
}
