//! Drive every hnv-wire parser over arbitrary bytes; the body of the
//! `frame_parser` fuzz target, also run by `tests/proptest.rs`.
//!
//! The invariant checked is the crate's panic contract: once `new_checked`
//! succeeds no getter panics, and `Repr::parse`, `PrettyFrame` and the
//! answer helpers never panic on any input.

use core::fmt::{self, Write};

use hnv_wire::{
    arp, ndisc, nvgre, too_big, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetRepr, GrePacket, GreRepr, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, Ipv4Packet, Ipv4Repr,
    Ipv6Address, Ipv6Packet, Ipv6Repr, NdiscNeighborAdvert, NdiscNeighborSolicit, NdiscRepr, NvgreRepr, PrettyFrame, TcpPacket, UdpPacket, UdpRepr, VlanPacket, VlanRepr,
};

/// A `fmt::Write` that discards, so formatting does not allocate.
struct Sink(usize);

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fn show<T: fmt::Display>(sink: &mut Sink, value: T) {
    let _ = write!(sink, "{value}");
}

fn show_debug<T: fmt::Debug>(sink: &mut Sink, value: T) {
    let _ = write!(sink, "{value:?}");
}

/// Run every parser over `data`. Never panics if the crate keeps its contract.
pub fn run(data: &[u8]) {
    let mut sink = Sink(0);
    show(&mut sink, PrettyFrame(data));

    if let Ok(p) = EthernetFrame::new_checked(data) {
        show_debug(&mut sink, (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload().len()));
        if let Ok(r) = EthernetRepr::parse(&p) {
            show(&mut sink, r);
        }
        // The frame-level answer helpers work on a copy.
        let mut copy = [0u8; 256];
        let n = data.len().min(copy.len());
        copy[..n].copy_from_slice(&data[..n]);
        let _ = arp::make_reply_frame_in_place(&mut copy[..n], EthernetAddress([2, 0, 0, 0, 0, 9]));
        let mut out = [0u8; ndisc::ADVERT_FRAME_LEN];
        let _ = ndisc::answer_solicit_frame(data, EthernetAddress([2, 0, 0, 0, 0, 9]), &mut out);
        copy[..n].copy_from_slice(&data[..n]);
        let _ = ndisc::answer_solicit_frame_in_place(&mut copy, EthernetAddress([2, 0, 0, 0, 0, 9]));
        // The path MTU errors, made in place in a buffer grown to the length they ask for.
        let macs = too_big::Macs { gateway: [2, 0, 0, 0, 0, 1], vm: [2, 0, 0, 0, 0, 2] };
        let mut big = [0u8; 2048];
        let n = data.len().min(big.len());
        if let Ok(len) = too_big::frag_needed_len(&data[..n]) {
            big[..n].copy_from_slice(&data[..n]);
            let got = too_big::frag_needed_in_place(&mut big[..len.max(n)], macs, core::net::Ipv4Addr::new(10, 0, 0, 1), 1458);
            assert_eq!(got, Ok(len), "frag_needed_in_place makes the length frag_needed_len promised");
        }
        if let Ok(len) = too_big::too_big_len(&data[..n]) {
            big[..n].copy_from_slice(&data[..n]);
            let got = too_big::too_big_in_place(&mut big[..len.max(n)], macs, Ipv6Address::LOCALHOST, 1458);
            assert_eq!(got, Ok(len), "too_big_in_place makes the length too_big_len promised");
        }
        big[..n].copy_from_slice(&data[..n]);
        let _ = too_big::frag_needed_in_place(&mut big[..n], macs, core::net::Ipv4Addr::new(10, 0, 0, 1), 1458);
        big[..n].copy_from_slice(&data[..n]);
        let _ = too_big::too_big_in_place(&mut big[..n], macs, Ipv6Address::LOCALHOST, 1280);
    }

    if let Ok(p) = VlanPacket::new_checked(data) {
        show_debug(&mut sink, (p.tci(), p.pcp(), p.dei(), p.vlan_id(), p.ethertype(), p.payload().len()));
        if let Ok(r) = VlanRepr::parse(&p) {
            show(&mut sink, r);
        }
    }

    if let Ok(p) = ArpPacket::new_checked(data) {
        show_debug(
            &mut sink,
            (
                p.hardware_type(),
                p.protocol_type(),
                p.hardware_len(),
                p.protocol_len(),
                p.operation(),
                p.source_hardware_addr(),
                p.source_protocol_addr(),
                p.target_hardware_addr(),
                p.target_protocol_addr(),
            ),
        );
        if let Ok(r) = ArpRepr::parse(&p) {
            show(&mut sink, r);
        }
    }
    let _ = ArpRepr::parse(&ArpPacket::new_unchecked(data));

    if let Ok(p) = Ipv4Packet::new_checked(data) {
        show_debug(&mut sink, (p.version(), p.header_len(), p.dscp(), p.ecn(), p.total_len(), p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset()));
        show_debug(&mut sink, (p.hop_limit(), p.next_header(), p.checksum(), p.src_addr(), p.dst_addr()));
        show_debug(&mut sink, (p.options().len(), p.verify_checksum(), p.payload().len()));
        let (src, dst) = (p.src_addr(), p.dst_addr());
        if let Ok(u) = UdpPacket::new_checked(p.payload()) {
            show_debug(&mut sink, u.verify_checksum_v4(&src, &dst));
        }
        if let Ok(t) = TcpPacket::new_checked(p.payload()) {
            show_debug(&mut sink, t.verify_checksum_v4(&src, &dst));
        }
    }
    let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(data));

    if let Ok(p) = Ipv6Packet::new_checked(data) {
        show_debug(&mut sink, (p.version(), p.traffic_class(), p.flow_label(), p.payload_len(), p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload().len()));
        let (src, dst) = (p.src_addr(), p.dst_addr());
        if let Ok(u) = UdpPacket::new_checked(p.payload()) {
            show_debug(&mut sink, u.verify_checksum_v6(&src, &dst));
        }
        if let Ok(t) = TcpPacket::new_checked(p.payload()) {
            show_debug(&mut sink, t.verify_checksum_v6(&src, &dst));
        }
        if let Ok(i) = Icmpv6Packet::new_checked(p.payload()) {
            if let Ok(r) = Icmpv6Repr::parse(&src, &dst, &i) {
                show(&mut sink, r);
            }
        }
    }
    let _ = Ipv6Repr::parse(&Ipv6Packet::new_unchecked(data));
    let mut out = [0u8; ndisc::ADVERT_IPV6_LEN];
    let _ = ndisc::answer_solicit(data, EthernetAddress([2, 0, 0, 0, 0, 9]), &mut out);

    if let Ok(p) = UdpPacket::new_checked(data) {
        show_debug(&mut sink, (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload().len()));
        if let Ok(r) = UdpRepr::parse(&p) {
            show(&mut sink, r);
        }
    }
    let _ = UdpRepr::parse(&UdpPacket::new_unchecked(data));

    if let Ok(p) = TcpPacket::new_checked(data) {
        show_debug(
            &mut sink,
            (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.header_len(), p.flags(), p.window_len(), p.checksum(), p.urgent_at(), p.options().len(), p.payload().len()),
        );
    }

    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        show_debug(&mut sink, (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq_no(), p.next_hop_mtu(), p.verify_checksum(), p.payload().len()));
        if let Ok(r) = Icmpv4Repr::parse(&p) {
            show(&mut sink, r);
        }
    }
    let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(data));

    let any6 = Ipv6Address::UNSPECIFIED;
    if let Ok(p) = Icmpv6Packet::new_checked(data) {
        show_debug(&mut sink, (p.msg_type(), p.msg_code(), p.checksum(), p.header_len(), p.echo_ident(), p.echo_seq_no(), p.pkt_too_big_mtu(), p.payload().len()));
        if let Ok(r) = NdiscRepr::parse(&p) {
            show(&mut sink, r);
        }
    }
    let _ = Icmpv6Repr::parse(&any6, &any6, &Icmpv6Packet::new_unchecked(data));
    let _ = NdiscRepr::parse(&Icmpv6Packet::new_unchecked(data));

    if let Ok(p) = NdiscNeighborSolicit::new_checked(data) {
        show_debug(&mut sink, (p.target_addr(), p.source_link_layer_addr()));
        for option in p.options() {
            show_debug(&mut sink, option.map(|o| o.link_layer_addr()));
        }
    }
    if let Ok(p) = NdiscNeighborAdvert::new_checked(data) {
        show_debug(&mut sink, (p.flags(), p.target_addr(), p.target_link_layer_addr()));
    }

    if let Ok(p) = GrePacket::new_checked(data) {
        show_debug(&mut sink, (p.flags_version(), p.version(), p.reserved0(), p.protocol_type(), p.header_len(), p.checksum(), p.key(), p.sequence(), p.verify_checksum(), p.payload().len()));
        if let Ok(r) = GreRepr::parse(&p) {
            show(&mut sink, r);
        }
    }
    let _ = GreRepr::parse(&GrePacket::new_unchecked(data));
    if let Ok(r) = NvgreRepr::parse(&GrePacket::new_unchecked(data)) {
        show(&mut sink, r);
    }
    let _ = nvgre::split(data);
    if let Ok(p) = hnv_wire::VxlanPacket::new_checked(data) {
        show_debug(&mut sink, (p.flags(), p.vni(), p.payload().len()));
    }
    if let Ok(r) = hnv_wire::VxlanRepr::parse(&hnv_wire::VxlanPacket::new_unchecked(data)) {
        show(&mut sink, r);
    }
    let _ = hnv_wire::vxlan::split(data);
}
