//! Property tests: parse(emit(repr)) == repr, incremental checksums equal
//! full recomputation, and no parser panics on arbitrary or truncated bytes.
//!
//! Also checks the fuzz seed corpus (`fuzz/seeds/frame_parser/`) against the
//! frame builders below; regenerate it with
//! `cargo test -p hnv-wire --test proptest -- --ignored write_fuzz_seeds`.
#![allow(clippy::unwrap_used)]

use hnv_wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, GrePacket, GreRepr, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, Ipv6Address, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscRepr, NvgreRepr, PrettyFrame, TcpPacket, UdpPacket, UdpRepr, VlanPacket, VlanRepr, Vsid,
};
use proptest::prelude::*;

#[path = "../fuzz/common/parse_all.rs"]
mod parse_all;

// ---------------------------------------------------------------- strategies

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn ipv4() -> impl Strategy<Value = Ipv4Address> {
    any::<[u8; 4]>().prop_map(Ipv4Address::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Address> {
    any::<[u8; 16]>().prop_map(Ipv6Address::from)
}

fn ethertype() -> impl Strategy<Value = EtherType> {
    any::<u16>().prop_map(EtherType::from)
}

fn protocol() -> impl Strategy<Value = IpProtocol> {
    any::<u8>().prop_map(IpProtocol::from)
}

fn vsid() -> impl Strategy<Value = Vsid> {
    (Vsid::MIN.get()..=Vsid::MAX.get()).prop_map(|v| Vsid::new(v).unwrap())
}

prop_compose! {
    fn ethernet_repr()(src_addr in mac(), dst_addr in mac(), ethertype in ethertype())
        -> EthernetRepr {
        EthernetRepr { src_addr, dst_addr, ethertype }
    }
}

prop_compose! {
    fn arp_repr()(
        op in any::<u16>(),
        source_hardware_addr in mac(),
        source_protocol_addr in ipv4(),
        target_hardware_addr in mac(),
        target_protocol_addr in ipv4(),
    ) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::from(op),
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        }
    }
}

prop_compose! {
    fn ipv4_repr()(
        src_addr in ipv4(),
        dst_addr in ipv4(),
        next_header in protocol(),
        payload_len in 0usize..1500,
        hop_limit in any::<u8>(),
        dont_frag in any::<bool>(),
    ) -> Ipv4Repr {
        Ipv4Repr { src_addr, dst_addr, next_header, payload_len, hop_limit, dont_frag }
    }
}

prop_compose! {
    fn ipv6_repr()(
        src_addr in ipv6(),
        dst_addr in ipv6(),
        next_header in protocol(),
        payload_len in 0usize..1500,
        hop_limit in any::<u8>(),
    ) -> Ipv6Repr {
        Ipv6Repr { src_addr, dst_addr, next_header, payload_len, hop_limit }
    }
}

prop_compose! {
    fn nvgre_repr()(vsid in vsid(), flow_id in any::<u8>()) -> NvgreRepr {
        NvgreRepr { vsid, flow_id }
    }
}

// ---------------------------------------------------------------- builders

const VM1_MAC: EthernetAddress = EthernetAddress([0x00, 0x15, 0x5d, 0x00, 0x00, 0x01]);
const VM2_MAC: EthernetAddress = EthernetAddress([0x00, 0x15, 0x5d, 0x00, 0x00, 0x02]);
const HOST1_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x01, 0x01]);
const HOST2_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x02, 0x01]);

/// An inner VM-to-VM UDP frame (10.0.0.1:49152 > 10.0.0.2:53, 4 bytes).
fn inner_udp_frame() -> Vec<u8> {
    let payload = [0xde, 0xad, 0xbe, 0xef];
    let ip =
        Ipv4Repr { src_addr: Ipv4Address::new(10, 0, 0, 1), dst_addr: Ipv4Address::new(10, 0, 0, 2), next_header: IpProtocol::Udp, payload_len: 8 + payload.len(), hop_limit: 64, dont_frag: true };
    let mut buf = vec![0u8; 14 + 20 + 8 + payload.len()];
    EthernetRepr { src_addr: VM1_MAC, dst_addr: VM2_MAC, ethertype: EtherType::Ipv4 }.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..34]));
    let mut udp = UdpPacket::new_unchecked(&mut buf[34..]);
    UdpRepr { src_port: 49152, dst_port: 53, payload_len: payload.len() }.emit(&mut udp);
    udp.payload_mut().copy_from_slice(&payload);
    udp.fill_checksum_v4(&ip.src_addr, &ip.dst_addr);
    buf
}

/// The inner frame encapsulated in NVGRE VSID 5001 over IPv4 (PA 192.168.0.1 > .2).
fn nvgre_frame() -> Vec<u8> {
    let inner = inner_udp_frame();
    let nvgre = NvgreRepr { vsid: Vsid::new(5001).unwrap(), flow_id: 0x2a };
    let mut buf = vec![0u8; hnv_wire::nvgre::OVERHEAD_IPV4 + inner.len()];
    EthernetRepr { src_addr: HOST1_MAC, dst_addr: HOST2_MAC, ethertype: EtherType::Ipv4 }.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    Ipv4Repr { src_addr: Ipv4Address::new(192, 168, 0, 1), dst_addr: Ipv4Address::new(192, 168, 0, 2), next_header: IpProtocol::Gre, payload_len: 8 + inner.len(), hop_limit: 128, dont_frag: true }
        .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..34]));
    nvgre.emit(&mut GrePacket::new_unchecked(&mut buf[34..42]));
    buf[42..].copy_from_slice(&inner);
    buf
}

/// The inner frame encapsulated in NVGRE VSID 6001 over IPv6, with a PA VLAN tag 100.
fn nvgre_ipv6_vlan_frame() -> Vec<u8> {
    let inner = inner_udp_frame();
    let nvgre = NvgreRepr { vsid: Vsid::new(6001).unwrap(), flow_id: 0x11 };
    let mut buf = vec![0u8; hnv_wire::nvgre::OVERHEAD_IPV6 + 4 + inner.len()];
    EthernetRepr { src_addr: HOST1_MAC, dst_addr: HOST2_MAC, ethertype: EtherType::Vlan }.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    VlanRepr { pcp: 0, dei: false, vlan_id: 100, ethertype: EtherType::Ipv6 }.emit(&mut VlanPacket::new_unchecked(&mut buf[14..18]));
    Ipv6Repr { src_addr: "2001:db8::1".parse().unwrap(), dst_addr: "2001:db8::2".parse().unwrap(), next_header: IpProtocol::Gre, payload_len: 8 + inner.len(), hop_limit: 64 }
        .emit(&mut Ipv6Packet::new_unchecked(&mut buf[18..58]));
    nvgre.emit(&mut GrePacket::new_unchecked(&mut buf[58..66]));
    buf[66..].copy_from_slice(&inner);
    buf
}

/// VM1 asks who has 10.0.0.2, padded to the 60-byte Ethernet minimum.
fn arp_request_frame() -> Vec<u8> {
    let mut buf = vec![0u8; 60];
    EthernetRepr { src_addr: VM1_MAC, dst_addr: EthernetAddress::BROADCAST, ethertype: EtherType::Arp }.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: VM1_MAC,
        source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Address::new(10, 0, 0, 2),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut buf[14..42]));
    buf
}

/// VM1 (fe80::1) solicits fe80::2 with a source link-layer address option.
fn ipv6_ns_frame() -> Vec<u8> {
    let src: Ipv6Address = "fe80::1".parse().unwrap();
    let target: Ipv6Address = "fe80::2".parse().unwrap();
    let dst = hnv_wire::ndisc::solicited_node(&target);
    let ns = NdiscRepr::NeighborSolicit { target_addr: target, lladdr: Some(VM1_MAC) };
    let mut buf = vec![0u8; 14 + 40 + ns.buffer_len()];
    EthernetRepr { src_addr: VM1_MAC, dst_addr: EthernetAddress::from_ipv6_multicast(&dst), ethertype: EtherType::Ipv6 }.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    Ipv6Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol::Ipv6Icmp, payload_len: ns.buffer_len(), hop_limit: 255 }.emit(&mut Ipv6Packet::new_unchecked(&mut buf[14..54]));
    hnv_wire::Icmpv6Repr::Ndisc(ns).emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut buf[54..]));
    buf
}

fn seeds() -> [(&'static str, Vec<u8>); 4] {
    [("nvgre_ipv4.bin", nvgre_frame()), ("nvgre_ipv6_vlan.bin", nvgre_ipv6_vlan_frame()), ("arp_request.bin", arp_request_frame()), ("ipv6_ns.bin", ipv6_ns_frame())]
}

fn seed_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/frame_parser")
}

// ---------------------------------------------------------------- fixed tests

#[test]
fn builders_parse_cleanly() {
    let s = PrettyFrame(&nvgre_frame()).to_string();
    assert!(s.contains("NVGRE vsid 5001 flowid 42: 00:15:5d:00:00:01 > 00:15:5d:00:00:02"), "{s}");
    assert!(s.ends_with("UDP 49152 > 53 len 4"), "{s}");
    let s = PrettyFrame(&nvgre_ipv6_vlan_frame()).to_string();
    assert!(s.contains("vlan 100") && s.contains("NVGRE vsid 6001 flowid 17"), "{s}");
    let s = PrettyFrame(&arp_request_frame()).to_string();
    assert!(s.ends_with("ARP request who-has 10.0.0.2 tell 10.0.0.1"), "{s}");
    let s = PrettyFrame(&ipv6_ns_frame()).to_string();
    assert!(s.contains("neighbor solicit who-has fe80::2 lladdr 00:15:5d:00:00:01"), "{s}");
    for (_, frame) in seeds() {
        let s = PrettyFrame(&frame).to_string();
        assert!(!s.contains('['), "{s}");
    }
}

#[test]
fn fuzz_seeds_are_current() {
    for (name, frame) in seeds() {
        let on_disk = std::fs::read(seed_dir().join(name)).unwrap_or_default();
        assert!(
            on_disk == frame,
            "fuzz seed {name} is stale: run `cargo test -p hnv-wire --test proptest -- \
             --ignored write_fuzz_seeds`"
        );
        parse_all::run(&on_disk);
    }
}

#[test]
#[ignore = "writes the fuzz seed corpus; run on demand"]
fn write_fuzz_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, frame) in seeds() {
        std::fs::write(seed_dir().join(name), frame).unwrap();
    }
}

#[test]
fn truncated_nvgre_never_panics() {
    for frame in [nvgre_frame(), nvgre_ipv6_vlan_frame(), arp_request_frame(), ipv6_ns_frame()] {
        for cut in 0..=frame.len() {
            parse_all::run(&frame[..cut]);
            // Every suffix too, so each parser sees each header start.
            parse_all::run(&frame[cut..]);
        }
    }
}

#[test]
fn decap_returns_inner_frame() {
    let frame = nvgre_frame();
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.next_header(), IpProtocol::Gre);
    let (repr, inner) = hnv_wire::nvgre::split(ip.payload()).unwrap();
    assert_eq!(repr.vsid.get(), 5001);
    assert_eq!(inner, &inner_udp_frame()[..]);
}

// ---------------------------------------------------------------- properties

proptest! {
    #[test]
    fn ethernet_roundtrip(repr in ethernet_repr()) {
        let mut buf = [0xa5u8; 14];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn vlan_roundtrip(pcp in 0u8..8, dei in any::<bool>(), vlan_id in 0u16..4096, et in ethertype()) {
        let repr = VlanRepr { pcp, dei, vlan_id, ethertype: et };
        let mut buf = [0xa5u8; 4];
        repr.emit(&mut VlanPacket::new_unchecked(&mut buf[..]));
        prop_assert_eq!(VlanRepr::parse(&VlanPacket::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn arp_roundtrip(repr in arp_repr()) {
        let mut buf = [0xa5u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv4_roundtrip(repr in ipv4_repr()) {
        let mut buf = vec![0xa5u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let packet = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn ipv6_roundtrip(repr in ipv6_repr()) {
        let mut buf = vec![0xa5u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn udp_roundtrip(
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        src in ipv4(),
        dst in ipv4(),
        src6 in ipv6(),
        dst6 in ipv6(),
    ) {
        let repr = UdpRepr { src_port, dst_port, payload_len: payload.len() };
        let mut buf = vec![0xa5u8; repr.buffer_len() + payload.len()];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&payload);
        p.fill_checksum_v4(&src, &dst);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum_v4(&src, &dst));
        prop_assert_eq!(UdpRepr::parse(&p), Ok(repr));
        prop_assert_eq!(p.payload(), &payload[..]);
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.fill_checksum_v6(&src6, &dst6);
        prop_assert!(p.verify_checksum_v6(&src6, &dst6));
    }

    #[test]
    fn tcp_checksum_roundtrip(
        segment in proptest::collection::vec(any::<u8>(), 20..80),
        src in ipv4(),
        dst in ipv4(),
        src6 in ipv6(),
        dst6 in ipv6(),
    ) {
        let mut segment = segment;
        segment[12] = 0x50;
        let mut p = TcpPacket::new_checked(&mut segment[..]).unwrap();
        p.fill_checksum_v4(&src, &dst);
        prop_assert!(p.verify_checksum_v4(&src, &dst));
        p.fill_checksum_v6(&src6, &dst6);
        prop_assert!(p.verify_checksum_v6(&src6, &dst6));
    }

    #[test]
    fn vxlan_roundtrip(vsid in vsid(), junk in any::<[u8; 8]>()) {
        let repr = hnv_wire::VxlanRepr { vsid };
        let mut buf = junk;
        repr.emit(&mut hnv_wire::VxlanPacket::new_unchecked(&mut buf[..]));
        prop_assert_eq!(hnv_wire::VxlanRepr::parse(&hnv_wire::VxlanPacket::new_unchecked(&buf[..])), Ok(repr));
        prop_assert_eq!(buf, [0x08, 0, 0, 0, (vsid.get() >> 16) as u8, (vsid.get() >> 8) as u8, vsid.get() as u8, 0]);
    }

    #[test]
    fn vxlan_parse_never_panics_and_accepts_only_i(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        let r = hnv_wire::VxlanRepr::parse(&hnv_wire::VxlanPacket::new_unchecked(&bytes[..]));
        if let Ok(repr) = r {
            prop_assert!(bytes.len() >= 8 && bytes[0] == 0x08);
            prop_assert_eq!(repr.vsid.get(), u32::from_be_bytes([0, bytes[4], bytes[5], bytes[6]]));
        }
    }

    #[test]
    fn nvgre_roundtrip(repr in nvgre_repr()) {
        let mut buf = [0xa5u8; 8];
        repr.emit(&mut GrePacket::new_unchecked(&mut buf[..]));
        let gre = GrePacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(NvgreRepr::parse(&gre), Ok(repr));
        prop_assert_eq!(
            GreRepr::parse(&gre),
            Ok(GreRepr {
                protocol_type: EtherType::TransparentEthernetBridging,
                checksum: false,
                key: Some(repr.key()),
                sequence: None,
            })
        );
        prop_assert_eq!(NvgreRepr::from_key(repr.key()), Ok(repr));
    }

    #[test]
    fn gre_roundtrip(
        et in ethertype(),
        csum in any::<bool>(),
        key in proptest::option::of(any::<u32>()),
        sequence in proptest::option::of(any::<u32>()),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let repr = GreRepr { protocol_type: et, checksum: csum, key, sequence };
        let mut buf = vec![0xa5u8; repr.buffer_len() + payload.len()];
        let mut p = GrePacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&payload);
        p.fill_checksum();
        prop_assert_eq!(GreRepr::parse(&GrePacket::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn icmpv4_echo_roundtrip(
        ident in any::<u16>(),
        seq_no in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        request in any::<bool>(),
    ) {
        let repr = if request {
            Icmpv4Repr::EchoRequest { ident, seq_no, data: &data }
        } else {
            Icmpv4Repr::EchoReply { ident, seq_no, data: &data }
        };
        let mut buf = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ndisc_roundtrip(
        target in ipv6(),
        lladdr in proptest::option::of(mac()),
        flags in any::<u8>(),
        solicit in any::<bool>(),
        src in ipv6(),
        dst in ipv6(),
    ) {
        prop_assume!(!target.is_multicast());
        let ndisc = if solicit {
            NdiscRepr::NeighborSolicit { target_addr: target, lladdr }
        } else {
            NdiscRepr::NeighborAdvert {
                flags: NdiscNeighborFlags::from_bits_truncate(flags),
                target_addr: target,
                lladdr,
            }
        };
        let repr = hnv_wire::Icmpv6Repr::Ndisc(ndisc);
        let mut buf = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(hnv_wire::Icmpv6Repr::parse(&src, &dst, &p), Ok(repr));
    }

    #[test]
    fn ttl_incremental_equals_full(repr in ipv4_repr(), ttl in any::<u8>()) {
        let mut buf = vec![0u8; 20 + repr.payload_len];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_hop_limit_incremental(ttl);
        let incremental = p.checksum();
        prop_assert!(p.verify_checksum());
        p.fill_checksum();
        prop_assert_eq!(incremental, p.checksum());
        let before = p.hop_limit();
        let after = p.decrement_ttl_incremental();
        prop_assert_eq!(after, before.saturating_sub(1));
        let incremental = p.checksum();
        p.fill_checksum();
        prop_assert_eq!(incremental, p.checksum());
    }

    #[test]
    fn address_incremental_equals_full(repr in ipv4_repr(), src in ipv4(), dst in ipv4()) {
        let mut buf = vec![0u8; 20 + repr.payload_len];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_src_addr_incremental(src);
        p.set_dst_addr_incremental(dst);
        let incremental = p.checksum();
        p.fill_checksum();
        prop_assert_eq!(incremental, p.checksum());
    }

    /// Any 16-bit word of an IPv4 header (bar version/IHL and the checksum
    /// itself) patched with checksum::update equals a full recompute.
    #[test]
    fn word_incremental_equals_full(
        header in any::<[u8; 20]>(),
        word in (1usize..10).prop_filter("not the checksum", |w| *w != 5),
        new_word in any::<u16>(),
    ) {
        let mut header = header;
        header[0] = 0x45;
        let mut p = Ipv4Packet::new_unchecked(&mut header[..]);
        p.fill_checksum();
        let old_checksum = p.checksum();
        let at = word * 2;
        let old_word = u16::from_be_bytes([header[at], header[at + 1]]);
        header[at..at + 2].copy_from_slice(&new_word.to_be_bytes());
        let incremental = checksum::update(old_checksum, old_word, new_word);
        let mut p = Ipv4Packet::new_unchecked(&mut header[..]);
        p.fill_checksum();
        prop_assert_eq!(incremental, p.checksum());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        parse_all::run(&data);
    }

    /// Random bytes behind plausible headers, so deeper layers get exercised.
    #[test]
    fn mutated_frames_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut frame = seeds()[which].1.clone();
        for (at, value) in edits {
            let at = at % frame.len();
            frame[at] = value;
        }
        let cut = cut % (frame.len() + 1);
        parse_all::run(&frame);
        parse_all::run(&frame[..cut]);
    }

    #[test]
    fn vsid_range(value in any::<u32>()) {
        let valid = (4096..=0xFF_FFFE).contains(&value);
        prop_assert_eq!(Vsid::new(value).is_ok(), valid);
        if let Ok(v) = Vsid::new(value) {
            prop_assert_eq!(v.get(), value);
            prop_assert_eq!(v.to_string().parse::<Vsid>(), Ok(v));
        }
    }

    #[test]
    fn flow_id_nonzero(
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        proto in any::<u8>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
    ) {
        let id = hnv_wire::flow_id(&src, &dst, proto, sport, dport);
        prop_assert_ne!(id, 0);
        prop_assert_eq!(id, hnv_wire::flow_id(&src, &dst, proto, sport, dport));
    }

    #[test]
    fn mac_display_roundtrip(addr in mac()) {
        prop_assert_eq!(addr.to_string().parse::<EthernetAddress>(), Ok(addr));
    }
}
