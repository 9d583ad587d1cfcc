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
    let Delivery::Encap(tpl) = t.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().to else { unreachable!() };
    let frame = blue_udp(1);
    c.bench_function("encap/template_copy_and_patch", |b| b.iter_batched_ref(|| HeapBuf::from_slice(&frame), |p| encap(p, &tpl, 42).unwrap(), BatchSize::SmallInput));
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

criterion_group!(benches, wire, encap_bench, acl, pipeline);
criterion_main!(benches);
