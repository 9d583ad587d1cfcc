//! Shared inputs for the benches: the worked example's host 1 and its traffic.
#![allow(clippy::unwrap_used)]

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Host 1's policy store and a switch over it.
pub fn host1() -> (Arc<PolicyStore>, HnvSwitch) {
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "example").unwrap()));
    let sw = HnvSwitch::new(store.clone(), standard_pipeline(), Arc::new(DatapathStats::default()), 0);
    (store, sw)
}

/// Blue1 → Blue2 UDP, 60 bytes, source port `sport`.
pub fn blue_udp(sport: u16) -> Vec<u8> {
    let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
    testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), a, b, sport, 9, 60)
}

/// Blue1's ARP request for Blue2.
pub fn blue_arp() -> Vec<u8> {
    testkit::arp_request(mac("00:15:5d:01:00:05"), Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7))
}

/// Host 2's NVGRE frame carrying Blue2 → Blue1 UDP.
pub fn nvgre_from_host2(sport: u16) -> Vec<u8> {
    let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
    let inner = testkit::udp(mac("00:15:5d:01:00:07"), mac("00:15:5d:01:00:05"), a, b, sport, 9, 60);
    testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), Ipv4Addr::new(192, 168, 4, 11), 5001, 1, &inner)
}
