//! Runs the fuzz targets' bodies (vswitch/datapath/fuzz/common/) on stable:
//! the pipeline case on seeds built from the worked example and on random
//! inputs, and the committed seeds of both targets. The seeds the fuzzer
//! starts from are checked against what this file builds; they are written
//! (into vswitch/datapath/fuzz/seeds/) only when `HNV_WRITE_SEEDS=1` is set,
//! so that `cargo test` leaves the tree as it found it.
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/common/pipeline_case.rs"]
mod pipeline_case;

#[path = "../fuzz/common/differential.rs"]
mod differential;

use hnv_datapath::testkit::{self, mac};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

fn case(sel: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![sel];
    for f in frames {
        let n = f.len().min(255);
        v.push(n as u8);
        v.extend_from_slice(&f[..n]);
    }
    v
}

fn pipeline_seeds() -> Vec<(String, Vec<u8>)> {
    let b1 = mac("00:15:5d:01:00:05");
    let b2 = mac("00:15:5d:01:00:07");
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7));
    let udp = testkit::udp(b1, b2, IpAddr::V4(a), IpAddr::V4(b), 1, 2, 60);
    let arp = testkit::arp_request(b1, a, b);
    let back = testkit::udp(b2, b1, IpAddr::V4(b), IpAddr::V4(a), 2, 1, 60);
    let nv = testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), Ipv4Addr::new(192, 168, 4, 11), 5001, 9, &back);
    // sel: bit 0 = host (0: host 1), bits 1-3 = ingress port (0 uplink, 1 blue1), bits 4-7 = policy change.
    vec![
        ("vm_udp_arp".into(), case(0b10, &[udp.clone(), arp])),
        ("uplink_nvgre".into(), case(0b00, std::slice::from_ref(&nv))),
        ("vm_udp_blue2_moves".into(), case(0x10 | 0b10, std::slice::from_ref(&udp))),
        ("vm_udp_acl_added".into(), case(0x30 | 0b10, &[udp])),
        ("uplink_nvgre_acl_removed".into(), case(0x60, &[nv])),
    ]
}

/// Reproducible pseudo-random bytes (xorshift), for the differential seeds.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn differential_seeds() -> Vec<(String, Vec<u8>)> {
    (0..4u64).map(|i| (format!("noise_{i}"), noise(0x9e37_79b9 + i, 400 + 300 * i as usize))).collect()
}

/// Compare `seeds` with the files in `dir`; write them instead when `HNV_WRITE_SEEDS=1`.
fn check_or_write(dir: PathBuf, seeds: &[(String, Vec<u8>)]) {
    let write = std::env::var_os("HNV_WRITE_SEEDS").is_some_and(|v| v == "1");
    for (name, data) in seeds {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, data).unwrap();
        } else {
            assert_eq!(
                std::fs::read(&path).ok().as_deref(),
                Some(&data[..]),
                "{} is not the seed this test builds; run `HNV_WRITE_SEEDS=1 cargo test -p hnv-datapath --test fuzz_cases` and commit it",
                path.display()
            );
        }
    }
}

fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target)
}

#[test]
fn pipeline_seeds_run_clean_hit_the_cache_and_are_committed() {
    let seeds = pipeline_seeds();
    for (name, data) in &seeds {
        let t = pipeline_case::run(data);
        assert!(t.flow_hits > 0, "seed {name}: the warm passes never hit the cache: {t:?}");
    }
    check_or_write(seed_dir("pipeline"), &seeds);
}

#[test]
fn differential_seeds_agree_hit_the_cache_and_are_committed() {
    let seeds = differential_seeds();
    let (mut changes, mut hitting) = (0, 0);
    for (name, data) in &seeds {
        let s = differential::scenario(data, differential::Options { known_bugs: false });
        let o = differential::run(&s).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        hitting += usize::from(o.hits > 0);
        changes += o.changes;
    }
    // The seeds are noise: some produce only outcomes the decision cache
    // leaves uncached by design (2 of 4 hit today); the generated scenarios in
    // tests/flow_cache.rs check the cache's exercise in bulk.
    assert!(hitting > 0, "none of the {} seeds hits the cache", seeds.len());
    assert!(changes >= 2, "the seeds change the policy only {changes} times");
    check_or_write(seed_dir("differential"), &seeds);
}

#[test]
fn fuzzing_leaves_no_files_behind() {
    // Nothing under the seed directories but the committed seeds (a stray
    // corpus or crash file there would be picked up by the next run).
    for (target, seeds) in [("pipeline", pipeline_seeds()), ("differential", differential_seeds())] {
        let mut names: Vec<String> = std::fs::read_dir(seed_dir(target)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let mut want: Vec<String> = seeds.into_iter().map(|(n, _)| n).collect();
        want.sort();
        assert_eq!(names, want, "files in fuzz/seeds/{target}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_and_mutated_cases_run_clean(data in proptest::collection::vec(any::<u8>(), 0..600), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), use_seed in any::<bool>()) {
        let seeds = pipeline_seeds();
        let mut d = if use_seed { seeds[data.len() % seeds.len()].1.clone() } else { data };
        let n = d.len();
        if n > 0 {
            for (at, x) in flips {
                d[at % n] ^= x;
            }
        }
        pipeline_case::run(&d);
    }
}
