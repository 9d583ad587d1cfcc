//! Microbenchmarks of the pure datapath on heap buffers (no DPDK): wire
//! parsing, NVGRE encapsulation, ACL classification against the rule count,
//! and a full switch batch of 32 for the encap, decap and ARP paths.
//! Numbers are comparable only on the same machine; see bench/README.md.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use hnv_bench::{blue_udp, host1, nvgre_from_host2};
use hnv_datapath::switch::encap;
use hnv_datapath::tables::Delivery;
use hnv_policy::{classify, AclAction, AclRule, Direction, Prefix, Vsid};
use pmd::{Batch, HeapBuf, Processor, TxStage, BURST};
use std::hint::black_box;
use std::net::IpAddr;

fn wire(c: &mut Criterion) {
    let f = nvgre_from_host2(1);
    c.bench_function("wire/parse_nvgre_outer_and_inner", |b| {
        b.iter(|| {
            let eth = hnv_wire::EthernetFrame::new_checked(black_box(&f[..])).unwrap();
            let ip = hnv_wire::Ipv4Packet::new_checked(eth.payload()).unwrap();
            let (nv, inner) = hnv_wire::nvgre::split(ip.payload()).unwrap();
            let ieth = hnv_wire::EthernetFrame::new_checked(inner).unwrap();
            black_box((nv.vsid, ieth.ethertype()))
        })
    });
}

fn encap_bench(c: &mut Criterion) {
    let (store, _) = host1();
    let t = store.snapshot();
    let Delivery::Encap(id) = t.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().to else { unreachable!() };
    let tpl = *t.template(id).unwrap();
    let frame = blue_udp(1);
    c.bench_function("encap/template_copy_and_patch", |b| b.iter_batched_ref(|| HeapBuf::from_slice(&frame), |p| encap(p, &tpl, 5001 << 8 | 42).unwrap(), BatchSize::SmallInput));
}

fn acl(c: &mut Criterion) {
    let mut g = c.benchmark_group("acl/classify_miss");
    let (src, dst): (IpAddr, IpAddr) = ("10.0.0.7".parse().unwrap(), "10.0.0.5".parse().unwrap());
    for n in [1usize, 10, 100, 1000] {
        let rules: Vec<AclRule> = (0..n)
            .map(|i| AclRule {
                vsid: Vsid::new(5001).unwrap(),
                priority: i as u32,
                direction: Direction::In,
                action: AclAction::Deny,
                protocol: Some(6),
                src: Some("10.1.0.0/16".parse::<Prefix>().unwrap()),
                dst: None,
                src_ports: None,
                dst_ports: Some((i as u16, i as u16)),
            })
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &rules, |b, r| b.iter(|| classify(black_box(r), Direction::In, 6, src, dst, 40000, 22)));
    }
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline/batch32");
    g.throughput(Throughput::Elements(BURST as u64));
    let cases: [(&str, u16, Vec<Vec<u8>>); 3] = [
        ("encap", 1, (0..BURST).map(|i| blue_udp(i as u16)).collect()),
        ("decap", 0, (0..BURST).map(|i| nvgre_from_host2(i as u16)).collect()),
        ("arp_reply", 1, (0..BURST).map(|_| hnv_bench::blue_arp()).collect()),
    ];
    for (name, port, frames) in cases {
        let (_, mut sw) = host1();
        let mut out: TxStage<HeapBuf> = TxStage::new(4);
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || frames.iter().map(|f| HeapBuf::from_slice(f)).collect::<Batch<HeapBuf>>(),
                |batch| {
                    sw.process(port, batch, &mut out, 0);
                    for p in 0..out.ports() {
                        if let Some(q) = out.pending_mut(p) {
                            q.clear()
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// The slow path at scale: every packet misses (cache off) and is resolved
/// against a policy of 1k or 1M remote lookup records; its cost should not
/// grow with the record count (hash lookups, no scans).
fn slow_path_at_scale(c: &mut Criterion) {
    use std::net::Ipv4Addr;
    let mut g = c.benchmark_group("slow_path/miss_batch32_records");
    g.throughput(Throughput::Elements(BURST as u64));
    g.sample_size(20);
    for n in [1_000u32, 1_000_000] {
        let mut policy = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "example").unwrap();
        let blue = policy.lookup.iter().find(|r| r.vsid.get() == 5001 && r.pa.to_string() == "192.168.4.22").unwrap().clone();
        let ca = |k: u32| Ipv4Addr::from(0x0b00_0000 + k);
        let mac = |k: u32| {
            let b = k.to_be_bytes();
            [0x02, 0xaa, b[0], b[1], b[2], b[3]]
        };
        for k in 0..n {
            policy.lookup.push(hnv_policy::LookupRecord { ca: IpAddr::V4(ca(k)), mac: hnv_policy::EthernetAddress(mac(k)), vm_name: None, ..blue.clone() });
        }
        let store = std::sync::Arc::new(hnv_datapath::PolicyStore::new(policy));
        let mut sw = hnv_datapath::HnvSwitch::new(store, hnv_datapath::standard_pipeline(), std::sync::Arc::new(hnv_datapath::DatapathStats::default()), 0).with_cache(0);
        let frames: Vec<Vec<u8>> = (0..BURST as u32)
            .map(|i| {
                let k = i.wrapping_mul(2_654_435_761) % n;
                hnv_datapath::testkit::udp(hnv_datapath::testkit::mac("00:15:5d:01:00:05"), mac(k), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), IpAddr::V4(ca(k)), 1000 + i as u16, 9, 60)
            })
            .collect();
        let mut out: TxStage<HeapBuf> = TxStage::new(4);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched_ref(
                || frames.iter().map(|f| HeapBuf::from_slice(f)).collect::<Batch<HeapBuf>>(),
                |batch| {
                    sw.process(1, batch, &mut out, 0);
                    let sent = out.pending_len(0);
                    assert_eq!(sent, BURST, "every packet is encapsulated to the uplink");
                    for p in 0..out.ports() {
                        if let Some(q) = out.pending_mut(p) {
                            q.clear()
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, wire, encap_bench, acl, pipeline, slow_path_at_scale);
criterion_main!(benches);
