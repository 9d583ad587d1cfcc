//! Gratuitous ARP after an uplink failover (`hnv_datapath::announce`): worker
//! 0 answers each announcement request once, at its next tick, with one ARP
//! announcement per IPv4 PA out of that PA's uplink; other workers and ticks
//! without a new request send nothing; the frames are counted so that the
//! totals still reconcile, and a missing buffer is a counted drop.
#![allow(clippy::unwrap_used)]

use hnv_datapath::{standard_pipeline, DatapathStats, DropReason, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::BLUE_RED_HOST1;
use pmd::{HeapBuf, PacketBuf, Processor, TxStage};
use std::sync::Arc;

fn switch(store: &Arc<PolicyStore>, worker: usize) -> (HnvSwitch, Arc<DatapathStats>) {
    let stats = Arc::new(DatapathStats::default());
    (HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), worker), stats)
}

/// Frames queued for `port` (pending and handed-over alike).
fn queued(tx: &mut TxStage<HeapBuf>, port: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = tx.direct_mut(port).map(|b| b.iter().map(|p| p.data().to_vec()).collect()).unwrap_or_default();
    out.extend(tx.pending_mut(port).map(|q| q.iter().map(|p| p.data().to_vec()).collect::<Vec<_>>()).unwrap_or_default());
    out
}

#[test]
fn worker_0_announces_each_ipv4_pa_once_per_request() {
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "example").unwrap()));
    let t = store.snapshot();
    let pas: Vec<_> = t.local_pas.iter().filter(|p| p.ip.is_ipv4()).copied().collect();
    assert!(!pas.is_empty(), "the example host has an IPv4 PA");
    let (mut w0, st0) = switch(&store, 0);
    let (mut w1, st1) = switch(&store, 1);
    let ports = t.ports.len();
    let mut alloc = |f: &[u8]| Some(HeapBuf::from_slice(f));

    // No request: nothing.
    let mut tx = TxStage::new(ports);
    Processor::<HeapBuf>::originate(&mut w0, &mut tx, &mut alloc, 0);
    assert!((0..ports).all(|p| queued(&mut tx, p).is_empty()));

    store.request_announce();
    let mut tx1 = TxStage::new(ports);
    Processor::<HeapBuf>::originate(&mut w1, &mut tx1, &mut alloc, 1);
    assert!((0..ports).all(|p| queued(&mut tx1, p).is_empty()), "only worker 0 announces");
    Processor::<HeapBuf>::originate(&mut w0, &mut tx, &mut alloc, 1);
    for pa in &pas {
        let frames = queued(&mut tx, usize::from(pa.uplink));
        let std::net::IpAddr::V4(ip) = pa.ip else { unreachable!() };
        let mine: Vec<_> = frames.iter().filter(|f| f.get(28..32) == Some(&ip.octets()[..])).collect();
        assert_eq!(mine.len(), 1, "one announcement for {}", pa.ip);
        let f = mine[0];
        assert_eq!((&f[0..6], &f[6..12], &f[12..14]), (&[0xff; 6][..], &pa.mac[..], &[0x08, 0x06][..]));
        assert_eq!(f.get(38..42), Some(&ip.octets()[..]), "sender and target are the PA");
    }
    let sent = pas.len() as u64;
    // Counted as originated and sent: the totals reconcile.
    let tot = Totals::sum([&*st0, &*st1]);
    assert_eq!((tot.rx, tot.replicas, tot.tx), (0, sent, sent));
    assert!(tot.reconciles());

    // The next tick without a new request sends nothing more.
    let mut tx2 = TxStage::new(ports);
    Processor::<HeapBuf>::originate(&mut w0, &mut tx2, &mut alloc, 2);
    assert!((0..ports).all(|p| queued(&mut tx2, p).is_empty()));

    // No buffer: counted as a drop, still reconciling.
    store.request_announce();
    Processor::<HeapBuf>::originate(&mut w0, &mut tx2, &mut |_: &[u8]| None, 3);
    assert!((0..ports).all(|p| queued(&mut tx2, p).is_empty()));
    assert_eq!(st0.drops_of(DropReason::ReplicaAllocFailed), sent);
    assert!(Totals::sum([&*st0, &*st1]).reconciles());
}

#[test]
fn a_request_made_before_the_worker_started_is_not_answered() {
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "example").unwrap()));
    store.request_announce();
    let (mut w0, _) = switch(&store, 0);
    let ports = store.snapshot().ports.len();
    let mut tx = TxStage::new(ports);
    Processor::<HeapBuf>::originate(&mut w0, &mut tx, &mut |f: &[u8]| Some(HeapBuf::from_slice(f)), 0);
    assert!((0..ports).all(|p| queued(&mut tx, p).is_empty()));
}
