//! Round-trip and robustness properties of the policy file format.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};
use hnv_policy::{
    format_mac, parse, parse_mac, parse_port_range, to_toml, AclAction, AclRule, CustomerRoute, Direction, EthernetAddress, LookupRecord, Policy, PolicyError, Prefix, RecordType, Rule, Vsid,
};
use proptest::prelude::*;

fn example(text: &str) -> Policy {
    match parse(text, "example.toml") {
        Ok(p) => p,
        Err(e) => panic!("example invalid:\n{e}"),
    }
}

fn vsid(v: u32) -> Vsid {
    Vsid::new(v).expect("valid vsid")
}

#[test]
fn examples_round_trip() {
    for text in [BLUE_RED_HOST1, BLUE_RED_HOST2] {
        let p = example(text);
        let written = to_toml(&p);
        match parse(&written, "written.toml") {
            Ok(q) => assert_eq!(q, p, "round trip changed the policy; written:\n{written}"),
            Err(e) => panic!("written policy invalid:\n{e}\n{written}"),
        }
        // Writing is deterministic and idempotent.
        assert_eq!(to_toml(&example(&written)), written);
    }
}

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
        Prefix::new(IpAddr::V4(Ipv4Addr::from(a & mask)), len).expect("masked")
    })
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
        Prefix::new(IpAddr::V6(Ipv6Addr::from(a & mask)), len).expect("masked")
    })
}

fn port_range() -> impl Strategy<Value = (u16, u16)> {
    (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (a.min(b), a.max(b)))
}

fn acl_rule() -> impl Strategy<Value = AclRule> {
    (
        prop::sample::select(vec![5001u32, 5002, 6001]),
        any::<u32>(),
        prop::sample::select(vec![Direction::In, Direction::Out, Direction::Both]),
        prop::sample::select(vec![AclAction::Allow, AclAction::Deny]),
        prop::sample::select(vec![None, Some(6u8), Some(17), Some(1), Some(58), Some(47)]),
        any::<bool>(),
        (prop::option::of(v4_prefix()), prop::option::of(v4_prefix())),
        (prop::option::of(v6_prefix()), prop::option::of(v6_prefix())),
        (prop::option::of(port_range()), prop::option::of(port_range())),
    )
        .prop_map(|(v, priority, direction, action, protocol, six, p4, p6, ports)| {
            let six = match protocol {
                Some(1) => false,
                Some(58) => true,
                _ => six,
            };
            let (src, dst) = if six { p6 } else { p4 };
            let (src_ports, dst_ports) = match protocol {
                None | Some(6) | Some(17) => ports,
                _ => (None, None),
            };
            AclRule { vsid: vsid(v), priority, direction, action, protocol, src, dst, src_ports, dst_ports }
        })
}

/// Remote VMs: index k gives a unique CA and MAC, so records never conflict.
fn remote_lookup(k: u16, v: u32, name: Option<String>, cid: Option<String>, l2: bool) -> LookupRecord {
    let [hi, lo] = k.to_be_bytes();
    LookupRecord {
        ca: IpAddr::V4(Ipv4Addr::new(10, 1, hi, lo)),
        vsid: vsid(v),
        mac: EthernetAddress([0x00, 0x15, 0x5d, 0xaa, hi, lo]),
        pa: IpAddr::V4(Ipv4Addr::new(192, 168, 4, 100 + (k % 50) as u8)),
        rule: Rule::Encap,
        kind: if l2 { RecordType::L2Only } else { RecordType::Static },
        customer_id: cid,
        vm_name: name,
        flow_entropy: true,
    }
}

fn customer_route() -> impl Strategy<Value = CustomerRoute> {
    (prop::sample::select(vec![("blue", 5001u32), ("blue", 5002), ("red", 6001)]), v4_prefix(), prop::option::of(1u32..0xDFFF_FFFF), any::<u32>()).prop_map(|((rd, v), destination, nh, metric)| {
        CustomerRoute { routing_domain: rd.to_string(), vsid: vsid(v), destination, next_hop: IpAddr::V4(nh.map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)), metric }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// parse(to_toml(p)) == p for the examples extended with arbitrary valid
    /// ACL rules, remote lookup records (with arbitrary text names) and
    /// customer routes.
    #[test]
    fn extended_examples_round_trip(
        host2 in any::<bool>(),
        acl in prop::collection::vec(acl_rule(), 0..12),
        remotes in prop::collection::btree_map(
            0u16..2000,
            (prop::sample::select(vec![5001u32, 5002, 6001]), prop::option::of(".*"), prop::option::of("[a-z0-9{}-]{0,40}"), any::<bool>()),
            0..12,
        ),
        routes in prop::collection::vec(customer_route(), 0..8),
        vlan in prop::option::of(1u16..=4094),
    ) {
        let mut p = example(if host2 { BLUE_RED_HOST2 } else { BLUE_RED_HOST1 });
        p.acl.extend(acl);
        p.sort_acl();
        for (k, (v, name, cid, l2)) in remotes {
            p.lookup.push(remote_lookup(k, v, name, cid, l2));
        }
        for r in routes {
            let dup = p.customer_routes.iter().any(|q| {
                q.routing_domain == r.routing_domain && q.vsid == r.vsid && q.destination == r.destination && q.next_hop == r.next_hop
            });
            if !dup {
                p.customer_routes.push(r);
            }
        }
        p.host.provider_addresses[0].vlan = vlan;
        let written = to_toml(&p);
        match parse(&written, "written.toml") {
            Ok(q) => prop_assert_eq!(q, p),
            Err(e) => prop_assert!(false, "written policy invalid:\n{}\n{}", e, written),
        }
    }

    /// Arbitrary text never panics the parser, and every validation error is one line.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        check_errors(parse(&text, "fuzz.toml"));
    }

    /// Small edits to a valid file never panic, and errors stay one line each.
    #[test]
    fn mutated_examples_never_panic(
        host2 in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, "[ -~\n]{0,6}"), 1..6),
    ) {
        let mut text = if host2 { BLUE_RED_HOST2 } else { BLUE_RED_HOST1 }.to_string();
        for (at, len, insert) in edits {
            let mut start = at.index(text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(start..end.max(start), &insert);
        }
        check_errors(parse(&text, "fuzz.toml"));
    }

    #[test]
    fn prefixes_round_trip(p in prop_oneof![v4_prefix(), v6_prefix()]) {
        prop_assert_eq!(p.to_string().parse::<Prefix>(), Ok(p));
        prop_assert!(p.contains(p.addr()));
    }

    #[test]
    fn macs_round_trip(m in any::<[u8; 6]>()) {
        let mac = EthernetAddress(m);
        prop_assert_eq!(parse_mac(&format_mac(&mac)), Ok(mac));
    }

    #[test]
    fn port_ranges_round_trip(r in port_range()) {
        prop_assert_eq!(parse_port_range(&hnv_policy::format_port_range(r)), Ok(r));
    }

    #[test]
    fn acl_classify_matches_first_rule(rules in prop::collection::vec(acl_rule(), 0..8), proto in any::<u8>(), a in any::<u32>(), b in any::<u32>(), sp in any::<u16>(), dp in any::<u16>()) {
        let (src, dst) = (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)));
        let got = hnv_policy::classify(&rules, Direction::In, proto, src, dst, sp, dp);
        let want = rules.iter().find(|r| r.matches(Direction::In, proto, src, dst, sp, dp)).map_or(AclAction::Allow, |r| r.action);
        prop_assert_eq!(got, want);
    }
}

fn check_errors(r: Result<Policy, PolicyError>) {
    match r {
        Err(e @ PolicyError::Invalid { .. }) => {
            assert!(!e.field_errors().is_empty());
            assert_eq!(e.to_string().lines().count(), e.field_errors().len(), "{e}");
        }
        Err(e) => assert_eq!(e.to_string().lines().count(), 1, "{e}"),
        Ok(_) => {}
    }
}
