//! The worked example of hnv.md §2 as two complete policy files.
//!
//! Contract: [`BLUE_RED_HOST1`] and [`BLUE_RED_HOST2`] are valid policies
//! (tested) for the two hosts of the example:
//!
//! | VM | VSID | CA | MAC | host (PA) | port / devargs |
//! |---|---|---|---|---|---|
//! | Blue1 | 5001 | 10.0.0.5 | 00:15:5d:01:00:05 | 1 (192.168.4.11) | `blue1` / `net_ring_h1blue1` |
//! | Red1  | 6001 | 10.0.0.5 | 00:15:5d:02:00:05 | 1 (192.168.4.11) | `red1` / `net_ring_h1red1` |
//! | Blue2 | 5001 | 10.0.0.7 | 00:15:5d:01:00:07 | 2 (192.168.4.22) | `blue2` / `net_ring_h2blue2` |
//! | Red2  | 6001 | 10.0.0.7 | 00:15:5d:02:00:07 | 2 (192.168.4.22) | `red2` / `net_ring_h2red2` |
//! | Blue3 | 5002 | 10.0.1.9 | 00:15:5d:01:01:09 | 2 (192.168.4.22) | `blue3` / `net_ring_h2blue3` |
//!
//! Host 1's PA MAC is 02:00:c0:a8:04:0b, host 2's 02:00:c0:a8:04:16; each
//! host lists the other as a static neighbor. Uplinks are `uplink` /
//! `net_ring_h1up` and `uplink` / `net_ring_h2up`. Routing domains `blue`
//! (VSIDs 5001 10.0.0.0/24 gw 10.0.0.1, 5002 10.0.1.0/24 gw 10.0.1.1) and
//! `red` (VSID 6001 10.0.0.0/24 gw 10.0.0.1); gateway MACs default to
//! `02:48:4e:` + VSID. Both files carry all five lookup records, a provider
//! default route via 192.168.4.1 (metric 10), and one ACL rule: VSID 5001
//! denies inbound TCP to port 23. Neither has customer routes (the subnets'
//! prefixes are the on-link routes).

/// The part both hosts' policies share: routing domains, subnets, every
/// lookup record (each host knows where every VM lives) and the ACL.
macro_rules! shared_records {
    () => {
        r#"[[routing_domains]]
name = "blue"
id = "{11111111-2222-3333-4444-555555555555}"

[[routing_domains]]
name = "red"
id = "{66666666-7777-8888-9999-aaaaaaaaaaaa}"

[[subnets]]
vsid = 5001
routing_domain = "blue"
prefixes = ["10.0.0.0/24"]
gateway_v4 = "10.0.0.1"

[[subnets]]
vsid = 5002
routing_domain = "blue"
prefixes = ["10.0.1.0/24"]
gateway_v4 = "10.0.1.1"

[[subnets]]
vsid = 6001
routing_domain = "red"
prefixes = ["10.0.0.0/24"]
gateway_v4 = "10.0.0.1"

[[lookup]]
ca = "10.0.0.5"
vsid = 5001
mac = "00:15:5d:01:00:05"
pa = "192.168.4.11"
vm_name = "Blue1"

[[lookup]]
ca = "10.0.0.5"
vsid = 6001
mac = "00:15:5d:02:00:05"
pa = "192.168.4.11"
vm_name = "Red1"

[[lookup]]
ca = "10.0.0.7"
vsid = 5001
mac = "00:15:5d:01:00:07"
pa = "192.168.4.22"
vm_name = "Blue2"

[[lookup]]
ca = "10.0.0.7"
vsid = 6001
mac = "00:15:5d:02:00:07"
pa = "192.168.4.22"
vm_name = "Red2"

[[lookup]]
ca = "10.0.1.9"
vsid = 5002
mac = "00:15:5d:01:01:09"
pa = "192.168.4.22"
vm_name = "Blue3"

[[acl]]
vsid = 5001
priority = 100
direction = "in"
action = "deny"
protocol = "tcp"
dst_ports = "23"
"#
    };
}

/// Host 1 (PA 192.168.4.11): Blue1 and Red1.
pub const BLUE_RED_HOST1: &str = concat!(
    r#"# hnv.md §2 worked example, host 1
[host]
name = "host1"

[[host.provider_addresses]]
address = "192.168.4.11"
prefix_len = 24
mac = "02:00:c0:a8:04:0b"
uplink = "uplink"

[[host.provider_routes]]
destination = "0.0.0.0/0"
next_hop = "192.168.4.1"
metric = 10

[[host.neighbors]]
address = "192.168.4.22"
mac = "02:00:c0:a8:04:16"

[[ports]]
name = "uplink"
role = "uplink"
devargs = "net_ring_h1up"

[[ports]]
name = "blue1"
role = "vm"
devargs = "net_ring_h1blue1"
vsid = 5001
mac = "00:15:5d:01:00:05"
addresses = ["10.0.0.5"]

[[ports]]
name = "red1"
role = "vm"
devargs = "net_ring_h1red1"
vsid = 6001
mac = "00:15:5d:02:00:05"
addresses = ["10.0.0.5"]

"#,
    shared_records!()
);

/// Host 2 (PA 192.168.4.22): Blue2, Red2 and Blue3.
pub const BLUE_RED_HOST2: &str = concat!(
    r#"# hnv.md §2 worked example, host 2
[host]
name = "host2"

[[host.provider_addresses]]
address = "192.168.4.22"
prefix_len = 24
mac = "02:00:c0:a8:04:16"
uplink = "uplink"

[[host.provider_routes]]
destination = "0.0.0.0/0"
next_hop = "192.168.4.1"
metric = 10

[[host.neighbors]]
address = "192.168.4.11"
mac = "02:00:c0:a8:04:0b"

[[ports]]
name = "uplink"
role = "uplink"
devargs = "net_ring_h2up"

[[ports]]
name = "blue2"
role = "vm"
devargs = "net_ring_h2blue2"
vsid = 5001
mac = "00:15:5d:01:00:07"
addresses = ["10.0.0.7"]

[[ports]]
name = "red2"
role = "vm"
devargs = "net_ring_h2red2"
vsid = 6001
mac = "00:15:5d:02:00:07"
addresses = ["10.0.0.7"]

[[ports]]
name = "blue3"
role = "vm"
devargs = "net_ring_h2blue3"
vsid = 5002
mac = "00:15:5d:01:01:09"
addresses = ["10.0.1.9"]

"#,
    shared_records!()
);
