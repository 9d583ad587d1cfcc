//! Live migration under load, three hosts on heap buffers: Blue1 on host 1
//! streams to Blue2 while Blue2 moves from host 2 to host 3. Host 1 learns
//! the move only from host 2's MS-NVGREE REDIRECT (its own policy update
//! comes much later); host 2 forwards what still reaches it during its grace
//! period. Every packet must reach Blue2: zero loss, counters reconcile.
//! The same with Blue's subnet on VXLAN: the REDIRECT travels in VXLAN too.
#![allow(clippy::unwrap_used)]

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, DropReason, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};
use hnv_policy::{EthernetAddress, Neighbor, Policy};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const UPLINK: u16 = 0;
const BLUE: u16 = 1;
const PA3_MAC: [u8; 6] = [2, 0, 0xc0, 0xa8, 4, 0x21];

struct Host {
    sw: HnvSwitch,
    store: Arc<PolicyStore>,
    stats: Arc<DatapathStats>,
}

impl Host {
    fn new(policy: Policy) -> Host {
        let store = Arc::new(PolicyStore::new(policy));
        let stats = Arc::new(DatapathStats::default());
        Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0).with_notify_interval(1_000), store, stats }
    }

    /// Frames in on `port` at TSC `now`; what comes out, by port.
    fn run(&mut self, port: u16, frames: Vec<Vec<u8>>, now: u64) -> Vec<(u16, Vec<u8>)> {
        let mut out = TxStage::new(8);
        for chunk in frames.chunks(32) {
            let mut b: Batch<HeapBuf> = chunk.iter().map(|f| HeapBuf::from_slice(f)).collect();
            self.sw.process(port, &mut b, &mut out, now);
        }
        (0..out.ports()).flat_map(|p| out.pending_mut(p).unwrap().drain(..).map(move |f| (p as u16, f.data().to_vec())).collect::<Vec<_>>()).collect()
    }

    fn totals(&self) -> Totals {
        Totals::sum([&*self.stats])
    }
}

fn policy(text: &str) -> Policy {
    hnv_policy::parse(text, "test").unwrap()
}

/// `text` with Blue's subnet 5001 on VXLAN when `vxlan`.
fn encap(text: &str, vxlan: bool) -> String {
    if vxlan {
        text.replacen("vsid = 5001\nrouting_domain", "vsid = 5001\nencap = \"vxlan\"\nrouting_domain", 1)
    } else {
        text.to_string()
    }
}

fn neighbor(p: &mut Policy, pa: &str, mac: [u8; 6]) {
    p.host.neighbors.push(Neighbor { address: pa.parse().unwrap(), mac: EthernetAddress(mac) });
}

fn blue2_at(p: &mut Policy, pa: &str) {
    p.lookup.iter_mut().find(|r| r.vm_name.as_deref() == Some("Blue2")).unwrap().pa = pa.parse().unwrap();
}

/// Host 2's policy after the move: Blue2 at host 3, its port parked.
fn host2_after() -> Policy {
    host2_after_in(false)
}

fn host2_after_in(vxlan: bool) -> Policy {
    let mut p = policy(&encap(BLUE_RED_HOST2, vxlan));
    neighbor(&mut p, "192.168.4.33", PA3_MAC);
    let port = p.ports.iter_mut().find(|q| q.name == "blue2").unwrap();
    port.mac = Some(EthernetAddress([2, 0, 0, 0, 2, 7]));
    port.addresses.clear();
    blue2_at(&mut p, "192.168.4.33");
    policy(&hnv_policy::to_toml(&p))
}

/// Host 3: host 2's layout at 192.168.4.33, holding Blue2 (and Red2, Blue3).
fn host3(vxlan: bool) -> Policy {
    policy(&encap(BLUE_RED_HOST2, vxlan).replace("192.168.4.22", "192.168.4.33").replace("02:00:c0:a8:04:16", "02:00:c0:a8:04:21").replace("host2", "host3"))
}

fn dst_pa(frame: &[u8]) -> [u8; 4] {
    [frame[30], frame[31], frame[32], frame[33]]
}

#[test]
fn migration_under_load_loses_nothing_thanks_to_grace_and_redirect() {
    migration_under_load(false);
}

#[test]
fn migration_of_a_vxlan_subnet_loses_nothing_and_its_redirect_travels_in_vxlan() {
    migration_under_load(true);
}

fn migration_under_load(vxlan: bool) {
    let mut p1 = policy(&encap(BLUE_RED_HOST1, vxlan));
    neighbor(&mut p1, "192.168.4.33", PA3_MAC);
    let mut h1 = Host::new(policy(&hnv_policy::to_toml(&p1)));
    let mut h2 = Host::new(policy(&encap(BLUE_RED_HOST2, vxlan)));
    let mut h3 = Host::new(host3(vxlan));
    let (rounds, per_round) = (60u64, 32u64);
    let (move_at, grace_ends_at, h1_policy_at) = (10, 25, 45);
    let mut delivered = 0u64;
    let mut via_h2_after_move = 0u64;
    let mut redirect_seen_at = None;
    for round in 0..rounds {
        let now = round * 10_000;
        if round == move_at {
            // The VM now runs on host 3; host 2 learns it at once, host 1 does not.
            h2.store.replace(host2_after_in(vxlan));
        }
        if round == grace_ends_at {
            assert!(h2.store.expire_moved(Instant::now() + Duration::from_secs(60)));
        }
        if round == h1_policy_at {
            let mut p = h1.store.policy();
            blue2_at(&mut p, "192.168.4.33");
            h1.store.replace(p);
            assert!(h1.store.redirects().is_empty(), "the policy caught up: the REDIRECT is retired");
        }
        let frames: Vec<Vec<u8>> = (0..per_round)
            .map(|i| testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), "10.0.0.5".parse().unwrap(), "10.0.0.7".parse().unwrap(), (round * per_round + i) as u16, 9, 64))
            .collect();
        // The fabric: deliver each host's uplink output to the host owning the outer destination PA.
        let mut wire: Vec<(u16, Vec<u8>)> = h1.run(BLUE, frames, now);
        let mut to_h1 = Vec::new();
        while !wire.is_empty() {
            let mut next = Vec::new();
            for (port, f) in wire {
                assert_eq!(port, UPLINK);
                assert_eq!(f[23], if vxlan { 17 } else { 47 }, "every frame on the fabric, REDIRECTs and forwarded ones included, in the subnet's encapsulation");
                match dst_pa(&f) {
                    [192, 168, 4, 22] => {
                        if round >= move_at {
                            via_h2_after_move += 1;
                        }
                        for (q, g) in h2.run(UPLINK, vec![f], now) {
                            if q == BLUE {
                                assert!(round < move_at, "host 2 delivers locally only before the move");
                                delivered += 1;
                            } else {
                                next.push((q, g));
                            }
                        }
                    }
                    [192, 168, 4, 33] => {
                        for (q, _) in h3.run(UPLINK, vec![f], now) {
                            assert_eq!(q, BLUE);
                            delivered += 1;
                        }
                    }
                    [192, 168, 4, 11] => to_h1.push(f),
                    other => panic!("frame to {other:?}"),
                }
            }
            wire = next;
        }
        // Host 1 consumes the REDIRECTs; its control tick applies them.
        if !to_h1.is_empty() {
            assert!(h1.run(UPLINK, to_h1, now).is_empty());
            if h1.store.apply_control_at(Instant::now(), now) {
                redirect_seen_at.get_or_insert(round);
            }
        }
    }
    assert_eq!(
        delivered,
        rounds * per_round,
        "every packet reached Blue2 (zero loss): drops h1 {:?} h2 {:?} h3 {:?}; notices {:?}",
        h1.totals().drops,
        h2.totals().drops,
        h3.totals().drops,
        h1.store.notices()
    );
    assert_eq!(redirect_seen_at, Some(move_at), "host 1 redirected after the first round that reached host 2");
    assert_eq!(via_h2_after_move, per_round, "only one round went the long way round through host 2");
    let notices = h1.store.notices();
    assert!(notices.iter().any(|n| n.kind == "redirect" && n.outcome.starts_with("applied")), "{notices:?}");
    for h in [&h1, &h2, &h3] {
        let t = h.totals();
        assert!(t.reconciles(), "{:?}", t.drops);
        assert_eq!(t.total_drops() - t.drops_of(DropReason::NvgreControl), 0, "{:?}", t.drops);
    }
    assert!(h2.totals().control_sent >= 1);
    assert_eq!(h1.totals().drops_of(DropReason::NvgreControl), h2.totals().control_sent);
}

#[test]
fn redirects_from_a_host_that_does_not_hold_the_vm_are_ignored() {
    // Host 3 claims Blue2 moved to 192.168.4.44; host 1's policy places Blue2 at host 2, so it is ignored.
    let mut h1 = Host::new(policy(BLUE_RED_HOST1));
    let forged = hnv_wire::nvgree::ControlRepr {
        control: hnv_wire::nvgree::Control::Redirect { new_pa: "192.168.4.44".parse().unwrap() },
        from_pa: "192.168.4.33".parse().unwrap(),
        to_pa: "192.168.4.11".parse().unwrap(),
        src_ca: "10.0.0.5".parse().unwrap(),
        dst_ca: "10.0.0.7".parse().unwrap(),
    };
    let mut inner = vec![0u8; hnv_wire::nvgree::FRAME_LEN];
    forged.emit(EthernetAddress(PA3_MAC), EthernetAddress([2, 0, 0xc0, 0xa8, 4, 0x0b]), &mut inner).unwrap();
    let wire = testkit::nvgre(mac("02:00:c0:a8:04:0b"), PA3_MAC, "192.168.4.33".parse().unwrap(), "192.168.4.11".parse().unwrap(), 5001, 0, &inner);
    assert!(h1.run(UPLINK, vec![wire], 0).is_empty());
    assert!(!h1.store.apply_control(Instant::now()));
    assert!(h1.store.redirects().is_empty());
    let n = h1.store.notices();
    assert_eq!(n.len(), 1);
    assert!(n[0].outcome.starts_with("ignored"), "{n:?}");
    assert_eq!(n[0].from, "192.168.4.33".parse::<IpAddr>().unwrap());
    assert!(h1.totals().reconciles());
}

#[test]
fn a_host_without_the_vm_answers_unreachable_and_the_sender_takes_note() {
    // Host 1 believes Blue2 is on host 2, but host 2's policy no longer has a port for it.
    let mut h1 = Host::new(policy(BLUE_RED_HOST1));
    let mut h2 = Host::new(host2_after());
    let mut p2 = h2.store.policy();
    p2.lookup.retain(|r| r.vm_name.as_deref() != Some("Blue2"));
    h2.store.replace(p2);
    let out = h1.run(BLUE, vec![testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), "10.0.0.5".parse().unwrap(), "10.0.0.7".parse().unwrap(), 1, 9, 64)], 0);
    assert_eq!(out.len(), 1);
    let back = h2.run(UPLINK, vec![out[0].1.clone()], 0);
    assert_eq!(back.len(), 1, "{:?}", h2.totals().drops);
    assert_eq!(dst_pa(&back[0].1), [192, 168, 4, 11]);
    assert_eq!(h2.totals().drops_of(DropReason::NoRecord), 1);
    assert!(h1.run(UPLINK, vec![back[0].1.clone()], 0).is_empty());
    assert!(!h1.store.apply_control(Instant::now()), "an UNREACHABLE changes no policy by itself");
    assert_eq!(h1.store.unreachable_received(), 1);
    assert_eq!(h1.store.notices()[0].kind, "unreachable");
    assert!(h1.totals().reconciles() && h2.totals().reconciles());
}
