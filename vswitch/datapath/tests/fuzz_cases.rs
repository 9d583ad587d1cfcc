//! Runs the pipeline fuzz target's body (vswitch/wire/fuzz/common/pipeline_case.rs)
//! on stable: on seeds built from the worked example and on random inputs,
//! and writes the seeds the fuzzer starts from.
#![allow(clippy::unwrap_used)]

#[path = "../../wire/fuzz/common/pipeline_case.rs"]
mod pipeline_case;

use hnv_datapath::testkit::{self, mac};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

fn case(sel: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![sel];
    for f in frames {
        let n = f.len().min(255);
        v.push(n as u8);
        v.extend_from_slice(&f[..n]);
    }
    v
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let b1 = mac("00:15:5d:01:00:05");
    let b2 = mac("00:15:5d:01:00:07");
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7));
    let udp = testkit::udp(b1, b2, IpAddr::V4(a), IpAddr::V4(b), 1, 2, 60);
    let arp = testkit::arp_request(b1, a, b);
    let back = testkit::udp(b2, b1, IpAddr::V4(b), IpAddr::V4(a), 2, 1, 60);
    let nv = testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), Ipv4Addr::new(192, 168, 4, 11), 5001, 9, &back);
    // sel: bit 0 = host (0: host 1), bits 1.. = ingress port (0 uplink, 1 blue1).
    vec![("vm_udp_arp".into(), case(0b10, &[udp, arp])), ("uplink_nvgre".into(), case(0b00, &[nv]))]
}

#[test]
fn seeds_run_clean_and_are_written() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wire/fuzz/seeds/pipeline");
    for (name, data) in seeds() {
        pipeline_case::run(&data);
        let path = dir.join(&name);
        if std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_and_mutated_cases_run_clean(data in proptest::collection::vec(any::<u8>(), 0..600), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), use_seed in any::<bool>()) {
        let mut d = if use_seed { seeds()[data.len() % 2].1.clone() } else { data };
        let n = d.len();
        if n > 0 {
            for (at, x) in flips {
                d[at % n] ^= x;
            }
        }
        pipeline_case::run(&d);
    }
}
