//! Gratuitous ARP for this host's provider addresses, after an uplink failover.
//!
//! When a bonded uplink moves its traffic to another member (active-backup),
//! the fabric's switches still send this host's PA MAC to the old member's
//! port until a frame from the host arrives on the new one; an active-backup
//! bond receives on its active member only, so a host that only receives
//! would stay cut off. Linux bonding answers this with gratuitous ARPs
//! (`num_grat_arp`); so does the switch: the control thread asks for an
//! announcement ([`crate::store::PolicyStore::request_announce`]) after it saw
//! a failover, and worker 0, at its next drain tick (never per packet), sends
//! one gratuitous ARP request (sender and target address both the PA, from the
//! PA's MAC, to broadcast, with the PA's VLAN tag) per IPv4 PA out of its
//! uplink ([`crate::switch::HnvSwitch`]'s `tick`). IPv6 PAs get none (an
//! unsolicited neighbor advertisement would be the equivalent; not built).
//!
//! [`garp`] builds the frame; it is pure.

use crate::tables::LocalPa;
use std::net::IpAddr;

/// Longest frame [`garp`] builds: a minimum Ethernet frame (60 bytes, no FCS) plus a VLAN tag.
pub const GARP_MAX: usize = 64;

/// The gratuitous ARP request announcing `pa`, and its length; `None` for an IPv6 PA.
pub fn garp(pa: &LocalPa) -> Option<([u8; GARP_MAX], usize)> {
    let IpAddr::V4(ip) = pa.ip else { return None };
    let mut f = [0u8; GARP_MAX];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&pa.mac);
    let mut off = 12;
    if let Some(vid) = pa.vlan {
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
        off = 16;
    }
    f[off..off + 2].copy_from_slice(&0x0806u16.to_be_bytes());
    let a = off + 2;
    // Ethernet/IPv4, request; sender = target = the PA; target MAC zero (RFC 5227's announcement).
    f[a..a + 8].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[a + 8..a + 14].copy_from_slice(&pa.mac);
    f[a + 14..a + 18].copy_from_slice(&ip.octets());
    f[a + 24..a + 28].copy_from_slice(&ip.octets());
    // Padded to the minimum frame (60 bytes untagged, 64 tagged).
    Some((f, if pa.vlan.is_some() { 64 } else { 60 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn an_announcement_names_the_pa_as_sender_and_target() {
        let pa = LocalPa { ip: IpAddr::V4(Ipv4Addr::new(192, 168, 4, 11)), mac: [2, 0, 0xc0, 0xa8, 4, 0x0b], vlan: None, uplink: 0 };
        let (f, n) = garp(&pa).unwrap();
        assert_eq!(n, 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &pa.mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..22], &[0, 1, 8, 0, 6, 4, 0, 1], "Ethernet/IPv4 request");
        assert_eq!(&f[22..28], &pa.mac, "sender MAC");
        assert_eq!(&f[28..32], &[192, 168, 4, 11], "sender IP");
        assert_eq!(&f[32..38], &[0; 6], "target MAC");
        assert_eq!(&f[38..42], &[192, 168, 4, 11], "target IP");
        assert!(f[42..60].iter().all(|&b| b == 0), "padding");
    }

    #[test]
    fn a_vlan_pa_is_announced_tagged_and_an_ipv6_pa_not_at_all() {
        let pa = LocalPa { ip: IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)), mac: [2, 0, 0, 0, 0, 1], vlan: Some(0x1234), uplink: 0 };
        let (f, n) = garp(&pa).unwrap();
        assert_eq!(n, 64);
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x02, 0x34, 0x08, 0x06], "VID masked to 12 bits");
        assert_eq!(&f[32..36], &[10, 1, 1, 1]);
        assert_eq!(&f[42..46], &[10, 1, 1, 1]);
        let v6 = LocalPa { ip: "fd00::1".parse().unwrap(), mac: [2, 0, 0, 0, 0, 1], vlan: None, uplink: 0 };
        assert!(garp(&v6).is_none());
    }
}
