//! Announcements of this host's provider addresses, after an uplink failover.
//!
//! When a bonded uplink moves its traffic to another member (active-backup),
//! the fabric's switches still send this host's PA MAC to the old member's
//! port until a frame from the host arrives on the new one; an active-backup
//! bond receives on its active member only, so a host that only receives
//! would stay cut off. Linux bonding answers this with gratuitous ARPs
//! (`num_grat_arp`) and unsolicited neighbor advertisements (`num_unsol_na`);
//! so does the switch: the control thread asks for an announcement
//! ([`crate::store::PolicyStore::request_announce`]) after it saw a failover,
//! and worker 0, at its next drain tick (never per packet), sends one
//! [`announcement`] per PA out of its uplink ([`crate::switch::HnvSwitch`]'s
//! `originate`):
//! - IPv4 PA: a gratuitous ARP request (sender and target address both the PA,
//!   from the PA's MAC, to broadcast; RFC 5227's announcement);
//! - IPv6 PA: an unsolicited neighbor advertisement (RFC 4861 §7.2.6: from the
//!   PA to all-nodes ff02::1, hop limit 255, Override set, Solicited clear,
//!   target the PA, with its link-layer address option).
//!
//! Both carry the PA's VLAN tag when it has one. The builders are pure.

use crate::tables::LocalPa;
use hnv_wire::checksum;
use std::net::{IpAddr, Ipv6Addr};

/// Longest frame [`announcement`] builds: an unsolicited NA (14 + 40 + 24 + 8) plus a VLAN tag.
pub const ANNOUNCE_MAX: usize = 90;

/// The announcement of `pa` (see the module contract) and its length.
pub fn announcement(pa: &LocalPa) -> ([u8; ANNOUNCE_MAX], usize) {
    let mut f = [0u8; ANNOUNCE_MAX];
    let n = match pa.ip {
        IpAddr::V4(ip) => garp(&mut f, pa, ip.octets()),
        IpAddr::V6(ip) => unsolicited_na(&mut f, pa, ip),
    };
    (f, n)
}

/// Ethernet header (with the PA's VLAN tag if any) to `dst`; the offset after it.
fn ethernet(f: &mut [u8; ANNOUNCE_MAX], pa: &LocalPa, dst: [u8; 6], ethertype: u16) -> usize {
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&pa.mac);
    let mut off = 12;
    if let Some(vid) = pa.vlan {
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
        off = 16;
    }
    f[off..off + 2].copy_from_slice(&ethertype.to_be_bytes());
    off + 2
}

/// A gratuitous ARP request for `ip`, padded to the minimum frame (60 bytes untagged, 64 tagged).
fn garp(f: &mut [u8; ANNOUNCE_MAX], pa: &LocalPa, ip: [u8; 4]) -> usize {
    let a = ethernet(f, pa, [0xff; 6], 0x0806);
    // Ethernet/IPv4, request; sender = target = the PA; target MAC zero.
    f[a..a + 8].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[a + 8..a + 14].copy_from_slice(&pa.mac);
    f[a + 14..a + 18].copy_from_slice(&ip);
    f[a + 24..a + 28].copy_from_slice(&ip);
    if pa.vlan.is_some() {
        64
    } else {
        60
    }
}

/// An unsolicited neighbor advertisement of `ip` to all nodes.
fn unsolicited_na(f: &mut [u8; ANNOUNCE_MAX], pa: &LocalPa, ip: Ipv6Addr) -> usize {
    const ICMP_LEN: usize = 32; // type..target (24) + target link-layer address option (8)
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let h = ethernet(f, pa, [0x33, 0x33, 0, 0, 0, 1], 0x86dd);
    f[h] = 0x60;
    f[h + 4..h + 6].copy_from_slice(&(ICMP_LEN as u16).to_be_bytes());
    f[h + 6] = 58; // ICMPv6
    f[h + 7] = 255; // RFC 4861 §7.1.2: hop limit 255
    f[h + 8..h + 24].copy_from_slice(&ip.octets());
    f[h + 24..h + 40].copy_from_slice(&all_nodes.octets());
    let i = h + 40;
    f[i] = 136; // neighbor advertisement
    f[i + 4] = 0x20; // Override; not Router, not Solicited
    f[i + 8..i + 24].copy_from_slice(&ip.octets());
    f[i + 24] = 2; // target link-layer address
    f[i + 25] = 1; // in units of 8 bytes
    f[i + 26..i + 32].copy_from_slice(&pa.mac);
    let sum = !checksum::combine(&[checksum::pseudo_header_v6(&ip, &all_nodes, hnv_wire::IpProtocol::Ipv6Icmp, ICMP_LEN as u32), checksum::data(&f[i..i + ICMP_LEN])]);
    f[i + 2..i + 4].copy_from_slice(&sum.to_be_bytes());
    i + ICMP_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn an_announcement_names_the_pa_as_sender_and_target() {
        let pa = LocalPa { ip: IpAddr::V4(Ipv4Addr::new(192, 168, 4, 11)), mac: [2, 0, 0xc0, 0xa8, 4, 0x0b], vlan: None, uplink: 0 };
        let (f, n) = announcement(&pa);
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
    fn a_vlan_pa_is_announced_tagged() {
        let pa = LocalPa { ip: IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)), mac: [2, 0, 0, 0, 0, 1], vlan: Some(0x1234), uplink: 0 };
        let (f, n) = announcement(&pa);
        assert_eq!(n, 64);
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x02, 0x34, 0x08, 0x06], "VID masked to 12 bits");
        assert_eq!(&f[32..36], &[10, 1, 1, 1]);
        assert_eq!(&f[42..46], &[10, 1, 1, 1]);
    }

    #[test]
    fn an_ipv6_pa_is_announced_by_an_unsolicited_neighbor_advertisement() {
        for vlan in [None, Some(7)] {
            let ip: Ipv6Addr = "fd00:4::11".parse().unwrap();
            let pa = LocalPa { ip: IpAddr::V6(ip), mac: [2, 0, 0, 0, 0, 0x11], vlan, uplink: 0 };
            let (f, n) = announcement(&pa);
            let h = if vlan.is_some() { 18 } else { 14 };
            assert_eq!(n, h + 40 + 32);
            assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1], "to all-nodes");
            assert_eq!(&f[h - 2..h], &[0x86, 0xdd]);
            let ipv6 = hnv_wire::Ipv6Packet::new_checked(&f[h..n]).unwrap();
            assert_eq!((ipv6.hop_limit(), ipv6.src_addr(), ipv6.dst_addr()), (255, ip, "ff02::1".parse().unwrap()));
            let icmp = hnv_wire::Icmpv6Packet::new_checked(ipv6.payload()).unwrap();
            assert!(icmp.verify_checksum(&ipv6.src_addr(), &ipv6.dst_addr()), "checksum");
            let repr = hnv_wire::NdiscRepr::parse(&icmp).unwrap();
            match repr {
                hnv_wire::NdiscRepr::NeighborAdvert { flags, target_addr, lladdr } => {
                    assert_eq!(target_addr, ip);
                    assert!(flags.contains(hnv_wire::NdiscNeighborFlags::OVERRIDE) && !flags.contains(hnv_wire::NdiscNeighborFlags::SOLICITED));
                    assert_eq!(lladdr.map(|a| a.0), Some(pa.mac));
                }
                other => panic!("not a neighbor advertisement: {other:?}"),
            }
        }
    }
}
