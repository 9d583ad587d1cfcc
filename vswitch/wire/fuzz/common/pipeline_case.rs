// One fuzz case for the whole switch pipeline: the first byte picks the host
// of the worked example and the ingress port, the rest is split into up to 32
// frames (each prefixed by a one-byte length). Every frame goes through a
// full HnvSwitch batch on heap buffers. Panics (the fuzzer's finding) if the
// switch panics, if the counters do not reconcile, or if a frame from a VM
// leaves on a VM port of another routing domain.
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::sync::{Arc, OnceLock};

fn stores() -> &'static [Arc<PolicyStore>; 2] {
    static S: OnceLock<[Arc<PolicyStore>; 2]> = OnceLock::new();
    S.get_or_init(|| {
        let p = |t: &str| Arc::new(PolicyStore::new(hnv_policy::parse(t, "example").expect("example policy is valid")));
        [p(hnv_policy::example::BLUE_RED_HOST1), p(hnv_policy::example::BLUE_RED_HOST2)]
    })
}

pub fn run(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let host = usize::from(sel & 1);
    let store = stores()[host].clone();
    let tables = store.snapshot();
    let in_port = u16::from(sel >> 1) % tables.ports.len() as u16;
    let mut batch: Batch<HeapBuf> = Batch::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        if batch.try_push(HeapBuf::from_slice(&tail[..n])).is_err() {
            break;
        }
        rest = &tail[n..];
    }
    let stats = Arc::new(DatapathStats::default());
    let mut sw = HnvSwitch::new(store, standard_pipeline(), stats.clone(), 0);
    let mut out = TxStage::new(tables.ports.len());
    sw.process(in_port, &mut batch, &mut out, 0);
    let t = Totals::sum([&*stats]);
    assert!(t.reconciles(), "counters do not reconcile: {t:?}");
    let rd = |vsid: u32| tables.vsid(vsid).map(|v| v.rd);
    let in_entry = &tables.ports[usize::from(in_port)];
    for p in 0..out.ports() {
        let out_entry = &tables.ports[p];
        for pkt in out.pending_mut(p).into_iter().flatten() {
            assert!(!pkt.data().is_empty());
            if in_entry.vsid != 0 && out_entry.vsid != 0 {
                assert_eq!(rd(in_entry.vsid), rd(out_entry.vsid), "crossed routing domains");
            }
        }
    }
}
