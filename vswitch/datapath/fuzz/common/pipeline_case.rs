// One fuzz case for the whole switch pipeline, with a warm flow cache. The
// first byte picks the host of the worked example (bit 0), the ingress port
// (bits 1-3) and a policy change (bits 4-7, see `change`); the rest is split
// into up to 32 frames (each prefixed by a one-byte length). The batch goes
// through a fresh HnvSwitch (with its flow cache) three times on heap
// buffers: cold, warm (its cacheable flows now hit), and after the policy
// change is published (entries that depend on it invalidated, the rest still
// hit). Panics (the fuzzer's finding) if the switch panics, if the counters
// do not reconcile after a pass, or if a frame from a VM leaves on a VM port
// of another routing domain. Each input is self-contained, so a finding
// reproduces from its input alone.
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::{AclAction, AclRule, CustomerRoute, Direction, EthernetAddress, LookupRecord, Neighbor, Policy, RecordType, Rule, Vsid};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// Policy changes selectable by the high nibble of the first byte.
const CHANGES: usize = 16;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

fn vsid(v: u32) -> Vsid {
    Vsid::new(v).expect("a literal VSID")
}

fn deny(v: u32, direction: Direction, protocol: Option<u8>, dst_ports: Option<(u16, u16)>) -> AclRule {
    AclRule { vsid: vsid(v), priority: 10, direction, action: AclAction::Deny, protocol, src: None, dst: None, src_ports: None, dst_ports }
}

/// Policy change `k` applied to `p`; `None` when it is no change or does not validate on this host.
fn change(p: &Policy, k: usize) -> Option<Policy> {
    let mut p = p.clone();
    let by_name = |p: &mut Policy, name: &str| p.lookup.retain(|r| r.vm_name.as_deref() != Some(name));
    match k {
        1 => {
            // Blue2 moves to a third host.
            p.host.neighbors.push(Neighbor { address: ip("192.168.4.33"), mac: EthernetAddress([2, 0, 0xc0, 0xa8, 4, 0x21]) });
            p.lookup.iter_mut().filter(|r| r.vm_name.as_deref() == Some("Blue2")).for_each(|r| r.pa = ip("192.168.4.33"));
        }
        2 => by_name(&mut p, "Blue3"),
        3 => p.acl.push(deny(5001, Direction::Out, Some(17), Some((2, 2)))),
        4 => p.acl.push(deny(6001, Direction::Both, Some(6), None)),
        5 => p.acl.push(deny(5002, Direction::In, Some(1), None)),
        6 => p.acl.clear(),
        7 => p.customer_routes.push(CustomerRoute { routing_domain: "blue".into(), vsid: vsid(5002), destination: "8.8.8.0/24".parse().ok()?, next_hop: ip("10.0.1.9"), metric: 10 }),
        8 => p.lookup.push(LookupRecord {
            ca: ip("10.0.0.66"),
            vsid: vsid(5001),
            mac: EthernetAddress([0, 0x15, 0x5d, 1, 0, 0x42]),
            pa: ip("192.168.4.22"),
            rule: Rule::Encap,
            kind: RecordType::Static,
            customer_id: None,
            vm_name: None,
            flow_entropy: true,
        }),
        9 => {
            by_name(&mut p, "Blue2");
            by_name(&mut p, "Red2");
        }
        10 => p.lookup.iter_mut().for_each(|r| r.flow_entropy = false),
        _ => return None,
    }
    hnv_policy::parse(&hnv_policy::to_toml(&p), "pipeline fuzz").ok()
}

/// Per host: the example policy and each change of it.
fn policies() -> &'static [(Policy, Vec<Option<Policy>>); 2] {
    static P: OnceLock<[(Policy, Vec<Option<Policy>>); 2]> = OnceLock::new();
    P.get_or_init(|| {
        let host = |t: &str| {
            let p = hnv_policy::parse(t, "example").expect("example policy is valid");
            let changes = (0..CHANGES).map(|k| change(&p, k)).collect();
            (p, changes)
        };
        [host(hnv_policy::example::BLUE_RED_HOST1), host(hnv_policy::example::BLUE_RED_HOST2)]
    })
}

/// Run one case; the counters after the last pass (zero for an empty input).
pub fn run(data: &[u8]) -> Totals {
    let Some((&sel, mut rest)) = data.split_first() else { return Totals::default() };
    let (policy, changes) = &policies()[usize::from(sel & 1)];
    let store = Arc::new(PolicyStore::new(policy.clone()));
    let tables = store.snapshot();
    let in_port = u16::from((sel >> 1) & 7) % tables.ports.len() as u16;
    let mut frames: Vec<&[u8]> = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        if frames.len() == pmd::BURST {
            break;
        }
        frames.push(&tail[..n]);
        rest = &tail[n..];
    }
    let stats = Arc::new(DatapathStats::default());
    let mut sw = HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0).with_cache(1024);
    for pass in 0..3 {
        if pass == 2 {
            if let Some(p) = &changes[usize::from(sel >> 4)] {
                store.replace(p.clone());
            }
        }
        let mut batch: Batch<HeapBuf> = frames.iter().map(|f| HeapBuf::from_slice(f)).collect();
        let mut out = TxStage::new(tables.ports.len());
        sw.process(in_port, &mut batch, &mut out, 0);
        let t = Totals::sum([&*stats]);
        assert!(t.reconciles(), "counters do not reconcile after pass {pass}: {t:?}");
        let rd = |vsid: u32| tables.vsid(vsid).map(|v| v.rd);
        let in_entry = &tables.ports[usize::from(in_port)];
        for p in 0..out.ports() {
            let out_entry = &tables.ports[p];
            for pkt in out.pending_mut(p).into_iter().flatten() {
                assert!(!pkt.data().is_empty());
                if in_entry.vsid != 0 && out_entry.vsid != 0 {
                    assert_eq!(rd(in_entry.vsid), rd(out_entry.vsid), "crossed routing domains in pass {pass}");
                }
            }
        }
    }
    Totals::sum([&*stats])
}
