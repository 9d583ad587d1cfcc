//! The policy store at 100k records: the compiled tables stay within issue
//! 11's budget of 200 bytes per record, and a stream of record changes
//! applied incrementally leaves tables that forward like a whole compile.
//! (Sizes, not times: timings are measured by scripts/policy-scale.sh.)
#![allow(clippy::unwrap_used)]

use hnv_datapath::PolicyStore;
use hnv_policy::api::Request;
use hnv_policy::file::LookupFile;
use hnv_policy::{EthernetAddress, LookupRecord, Options};
use std::net::{IpAddr, Ipv4Addr};

const N: u32 = 100_000;

fn ca(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0b00_0000 + k)
}

fn mac(k: u32) -> [u8; 6] {
    let b = k.to_be_bytes();
    [0x02, 0xaa, b[0], b[1], b[2], b[3]]
}

#[test]
fn a_large_policy_fits_the_budget_and_changes_compile_like_the_whole() {
    let mut policy = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "example").unwrap();
    // 100k remote VMs in VSID 5001 on host 2 (CAs outside the subnet's prefix: the model allows it).
    let blue2 = policy.lookup.iter().find(|r| r.vm_name.as_deref() == Some("Blue2")).unwrap().clone();
    for k in 0..N {
        policy.lookup.push(LookupRecord { ca: IpAddr::V4(ca(k)), mac: EthernetAddress(mac(k)), vm_name: None, ..blue2.clone() });
    }
    let store = PolicyStore::new(policy);
    let m = store.memory();
    let per_record = (m.tables.record_bytes + m.tables.map_bytes) / m.tables.records;
    assert!(per_record <= 200, "compiled tables take {per_record} B/record: {m:?}");
    assert_eq!(m.records, N as usize + 5);
    let before = store.snapshot();
    for i in 0..200u32 {
        let k = i * 499 % N;
        let pa = if i % 2 == 0 { "192.168.4.11" } else { "192.168.4.22" };
        let record =
            LookupFile { ca: ca(k).to_string(), vsid: 5001, mac: format!("02:aa:{:02x}:{:02x}:{:02x}:{:02x}", mac(k)[2], mac(k)[3], mac(k)[4], mac(k)[5]), pa: pa.into(), ..Default::default() };
        let req = match i % 5 {
            // A record at this host's PA needs a local port: refused, nothing changes.
            0 => Request::ReplaceRecord { record },
            4 => Request::RemoveRecord { vsid: 5001, ca: ca(k).to_string() },
            // Moves between host 2 and a host without a known next hop (unresolved).
            _ => Request::ReplaceRecord { record: LookupFile { pa: if i % 2 == 1 { "192.168.4.33" } else { "192.168.4.22" }.into(), ..record } },
        };
        let _ = store.change(&[req], Options::default());
    }
    let after = store.snapshot();
    assert!(after.generation > before.generation);
    assert_eq!(after.global_version, before.global_version, "record changes never touch the host-level version");
    let whole = hnv_datapath::Tables::compile(&store.policy(), &mut Default::default(), &[], 0);
    after.forwards_like(&whole).unwrap();
    assert_eq!(store.memory().records, N as usize + 5 - 40, "every fifth change removed a record");
}
