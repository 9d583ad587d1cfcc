//! Tenant isolation as a property: random frames (well-formed, hostile and
//! garbage) entering any port of either example host never come out on a
//! port, or with a VSID, of another tenant, and the counters always reconcile,
//! with a cold flow cache, a warm one, and across policy changes.
#![allow(clippy::unwrap_used, clippy::needless_range_loop, clippy::too_many_arguments, clippy::cloned_ref_to_slice_refs)]

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Tenant (routing domain) of a VSID: Blue = {5001, 5002}, Red = {6001}.
fn tenant(vsid: u32) -> Option<u8> {
    match vsid {
        5001 | 5002 => Some(0),
        6001 => Some(1),
        _ => None,
    }
}

/// VSID of each port of host 1 and host 2 (0 = uplink).
const PORTS: [&[u32]; 2] = [&[0, 5001, 6001], &[0, 5001, 6001, 5002]];

const MACS: [&str; 9] =
    ["00:15:5d:01:00:05", "00:15:5d:01:00:07", "00:15:5d:02:00:05", "00:15:5d:02:00:07", "00:15:5d:01:01:09", "02:48:4e:00:13:89", "02:48:4e:00:17:71", "02:48:4e:00:13:8a", "ff:ff:ff:ff:ff:ff"];
const IPS: [[u8; 4]; 6] = [[10, 0, 0, 5], [10, 0, 0, 7], [10, 0, 1, 9], [10, 0, 0, 1], [10, 0, 0, 66], [0, 0, 0, 0]];
const PAS: [[u8; 4]; 3] = [[192, 168, 4, 11], [192, 168, 4, 22], [192, 168, 4, 33]];

#[derive(Debug, Clone)]
enum Input {
    Garbage(Vec<u8>),
    Udp {
        src_mac: usize,
        dst_mac: usize,
        src: usize,
        dst: usize,
        ttl: u8,
    },
    Arp {
        src_mac: usize,
        src: usize,
        target: usize,
    },
    /// From the VM that owns the ingress port (or, inside NVGRE, from a VM of the key's VSID).
    Own {
        dst_mac: usize,
        dst: usize,
        arp: bool,
    },
    Nvgre {
        vsid: u32,
        outer_src: usize,
        outer_dst: usize,
        inner: Box<Input>,
        flip: Option<(usize, u8)>,
    },
}

fn leaf() -> impl Strategy<Value = Input> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(Input::Garbage),
        (0..MACS.len(), 0..MACS.len(), 0..IPS.len(), 0..IPS.len(), 0u8..4).prop_map(|(a, b, c, d, ttl)| Input::Udp { src_mac: a, dst_mac: b, src: c, dst: d, ttl }),
        (0..MACS.len(), 0..IPS.len(), 0..IPS.len()).prop_map(|(a, b, c)| Input::Arp { src_mac: a, src: b, target: c }),
        (0..MACS.len(), 0..IPS.len(), any::<bool>()).prop_map(|(m, d, arp)| Input::Own { dst_mac: m, dst: d, arp }),
        (0..MACS.len(), 0..IPS.len(), any::<bool>()).prop_map(|(m, d, arp)| Input::Own { dst_mac: m, dst: d, arp }),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    leaf().prop_flat_map(|inner| {
        prop_oneof![
            Just(inner.clone()),
            (prop_oneof![Just(5001u32), Just(5002), Just(6001), 0u32..0x100_0000], 0..PAS.len(), 0..PAS.len(), proptest::option::of((0usize..120, any::<u8>())))
                .prop_map(move |(vsid, s, d, flip)| Input::Nvgre { vsid, outer_src: s, outer_dst: d, inner: Box::new(inner.clone()), flip }),
        ]
    })
}

/// The VM (MAC, CA) that sends from a VSID on a host (host 2's VMs inside NVGRE to host 1, and vice versa).
fn vm_of(host: usize, vsid: u32) -> ([u8; 6], [u8; 4]) {
    match (host, vsid) {
        (0, 5001) => (mac(MACS[0]), IPS[0]),
        (0, 6001) => (mac(MACS[2]), IPS[0]),
        (1, 5001) => (mac(MACS[1]), IPS[1]),
        (1, 6001) => (mac(MACS[3]), IPS[1]),
        (_, 5002) => (mac(MACS[4]), IPS[2]),
        _ => (mac(MACS[0]), IPS[0]),
    }
}

fn build(i: &Input, host: usize, vsid: u32) -> Vec<u8> {
    let v4 = |a: [u8; 4]| Ipv4Addr::from(a);
    match i {
        Input::Own { dst_mac, dst, arp } => {
            let (m, ca) = vm_of(host, vsid);
            if *arp {
                testkit::arp_request(m, v4(ca), v4(IPS[*dst]))
            } else {
                testkit::udp(m, mac(MACS[*dst_mac]), IpAddr::V4(v4(ca)), IpAddr::V4(v4(IPS[*dst])), 1, 2, 60)
            }
        }
        Input::Garbage(b) => b.clone(),
        Input::Udp { src_mac, dst_mac, src, dst, ttl } => {
            let mut f = testkit::udp(mac(MACS[*src_mac]), mac(MACS[*dst_mac]), IpAddr::V4(v4(IPS[*src])), IpAddr::V4(v4(IPS[*dst])), 1, 2, 60);
            if *ttl < 2 {
                f[22] = *ttl;
            }
            f
        }
        Input::Arp { src_mac, src, target } => testkit::arp_request(mac(MACS[*src_mac]), v4(IPS[*src]), v4(IPS[*target])),
        Input::Nvgre { vsid, outer_src, outer_dst, inner, flip } => {
            let mut f = testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), v4(PAS[*outer_src]), v4(PAS[*outer_dst]), *vsid, 7, &build(inner, 1 - host, *vsid));
            if let Some((at, x)) = flip {
                let n = f.len();
                f[at % n] ^= x;
            }
            f
        }
    }
}

fn key_vsid(f: &[u8]) -> Option<u32> {
    (f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 47).then(|| u32::from_be_bytes([f[38], f[39], f[40], f[41]]) >> 8)
}

/// A policy change between the warm passes that keeps every VSID's tenant.
fn changed(policy: &hnv_policy::Policy, k: usize) -> Option<hnv_policy::Policy> {
    let mut p = policy.clone();
    match k {
        1 => {
            p.host.neighbors.push(hnv_policy::Neighbor { address: "192.168.4.33".parse().unwrap(), mac: hnv_policy::EthernetAddress([2, 0, 0xc0, 0xa8, 4, 0x21]) });
            p.lookup.iter_mut().filter(|r| r.vm_name.as_deref() == Some("Blue2")).for_each(|r| r.pa = "192.168.4.33".parse().unwrap());
        }
        2 => p.lookup.retain(|r| r.vm_name.as_deref() != Some("Red2")),
        3 => p.acl.clear(),
        _ => return None,
    }
    hnv_policy::parse(&hnv_policy::to_toml(&p), "changed").ok()
}

/// Every case runs its batch three times through one switch: cold, with a
/// warm flow cache, and (in some cases) after a policy change; isolation
/// must hold in every pass, and the warm passes must hit the cache in most
/// cases.
#[test]
fn nothing_crosses_tenants() {
    let mut runner = TestRunner::new(Config { cases: 3000, failure_persistence: None, ..Config::default() });
    let (cases, with_hits) = (Cell::new(0u64), Cell::new(0u64));
    let strategy = (0usize..2, 0usize..4, proptest::collection::vec(input(), 1..8), 0usize..6);
    let result = runner.run(&strategy, |(host, port_sel, frames, change)| {
        let policy = hnv_policy::parse(if host == 0 { BLUE_RED_HOST1 } else { BLUE_RED_HOST2 }, "example").unwrap();
        let stats = Arc::new(DatapathStats::default());
        let store = Arc::new(PolicyStore::new(policy.clone()));
        let mut sw = HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0).with_cache(1024);
        let ports = PORTS[host];
        let in_port = (port_sel % ports.len()) as u16;
        let in_vsid = ports[usize::from(in_port)];
        let built: Vec<Vec<u8>> = frames.iter().map(|f| build(f, host, in_vsid)).collect();
        let sent_vsids: Vec<u32> = built.iter().filter_map(|f| key_vsid(f)).collect();
        for pass in 0..3 {
            if pass == 2 {
                if let Some(p) = changed(&policy, change) {
                    store.replace(p);
                }
            }
            let mut batch: Batch<HeapBuf> = built.iter().map(|f| HeapBuf::from_slice(f)).collect();
            let mut out = TxStage::new(ports.len());
            sw.process(in_port, &mut batch, &mut out, 0);
            check(ports, in_vsid, &sent_vsids, &mut out).map_err(|e| TestCaseError::fail(format!("pass {pass}: {e}")))?;
            let t = Totals::sum([&*stats]);
            prop_assert!(t.reconciles(), "pass {}: {:?}", pass, t);
        }
        cases.set(cases.get() + 1);
        with_hits.set(with_hits.get() + u64::from(stats.flow_hits.get() > 0));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("{} cases, {} with cache hits", cases.get(), with_hits.get());
    assert!(with_hits.get() * 2 >= cases.get(), "the warm passes hit the cache in only {} of {} cases", with_hits.get(), cases.get());
}

/// The isolation property for one batch's output.
fn check(ports: &[u32], in_vsid: u32, sent_vsids: &[u32], out: &mut TxStage<HeapBuf>) -> Result<(), TestCaseError> {
    for p in 0..ports.len() {
        for pkt in out.pending_mut(p).unwrap().iter() {
            let f = pkt.data();
            let out_vsid = ports[p];
            if in_vsid != 0 {
                // From a VM: stays in the sender's tenant, on a VM port or encapsulated.
                let v = if out_vsid != 0 { out_vsid } else { key_vsid(f).unwrap() };
                prop_assert_eq!(tenant(v), tenant(in_vsid), "VM in VSID {} reached VSID {} on port {}", in_vsid, v, p);
            } else if out_vsid != 0 {
                // From the uplink to a VM: only in the VSID the key named.
                prop_assert!(sent_vsids.contains(&out_vsid), "decapsulated into VSID {} not named by any key {:?}", out_vsid, sent_vsids);
                prop_assert!(key_vsid(f).is_none(), "a VM never sees NVGRE");
            } else if let Some(v) = key_vsid(f) {
                // From the uplink back to the uplink, in the requester's VSID: ARP answered
                // from policy, or an MS-NVGREE UNREACHABLE to the validated sender.
                if hnv_wire::nvgree::ControlRepr::parse(&f[42..]).is_ok() {
                    // A control message goes in the sending VM's own VSID: same tenant as the traffic.
                    prop_assert!(sent_vsids.iter().any(|s| tenant(*s) == tenant(v)), "control message into VSID {} of another tenant than {:?}", v, sent_vsids);
                } else {
                    prop_assert!(sent_vsids.contains(&v), "answered into VSID {} not named by any key {:?}", v, sent_vsids);
                    prop_assert_eq!(&f[42 + 12..42 + 14], &[8u8, 6][..]);
                }
            } else {
                // Or provider ARP replies.
                prop_assert_eq!(&f[12..14], &[8u8, 6][..]);
            }
        }
    }
    Ok(())
}
