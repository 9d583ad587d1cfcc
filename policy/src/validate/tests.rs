//! Unit tests: one (or more) per validation rule, each starting from the
//! valid host-1 example and breaking exactly one thing.

use super::*;
use crate::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};

const BASE: &str = BLUE_RED_HOST1;

fn errors(text: &str) -> Vec<FieldError> {
    match parse(text, "t.toml") {
        Err(PolicyError::Invalid { errors, .. }) => errors,
        Err(e) => panic!("expected validation errors, got {e}"),
        Ok(_) => panic!("expected validation errors, got a valid policy"),
    }
}

fn ok(text: &str) -> Policy {
    match parse(text, "t.toml") {
        Ok(p) => p,
        Err(e) => panic!("expected a valid policy:\n{e}"),
    }
}

/// `base` with `from` (which must occur exactly once) replaced by `to`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert_eq!(base.matches(from).count(), 1, "'{from}' must occur exactly once");
    base.replacen(from, to, 1)
}

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

/// Asserts that some error has this record prefix, field and message part.
#[track_caller]
fn has(errs: &[FieldError], record: &str, field: &str, msg: &str) {
    assert!(
        errs.iter().any(|e| e.record.starts_with(record) && e.field == field && e.message.contains(msg)),
        "no error {record} / {field} / '{msg}' in:\n{}",
        errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
}

const BLUE2_LOOKUP: &str = r#"[[lookup]]
ca = "10.0.0.7"
vsid = 5001
mac = "00:15:5d:01:00:07"
pa = "192.168.4.22"
vm_name = "Blue2""#;

#[test]
fn examples_are_valid() {
    let p1 = ok(BLUE_RED_HOST1);
    let p2 = ok(BLUE_RED_HOST2);
    assert_eq!(p1.ports.len(), 3);
    assert_eq!(p2.ports.len(), 4);
    assert_eq!(p1.lookup.len(), 5);
    assert_eq!(p1.subnets.len(), 3);
    assert_eq!(p1.acl.len(), 1);
    assert_eq!(p1.lookup, p2.lookup);
}

// ---- VSID range, everywhere a VSID appears ---------------------------------

#[test]
fn vsid_out_of_range_subnet() {
    let e = errors(&edit(BASE, "vsid = 5002\nrouting_domain", "vsid = 4095\nrouting_domain"));
    has(&e, "subnets[1] (vsid 4095)", "vsid", "outside the valid range");
}

#[test]
fn vsid_out_of_range_port_lookup_acl_route() {
    let e = errors(&edit(BASE, "devargs = \"net_ring_h1blue1\"\nvsid = 5001", "devargs = \"net_ring_h1blue1\"\nvsid = 16777215"));
    has(&e, "ports[1] (blue1)", "vsid", "outside the valid range");
    let e = errors(&edit(BASE, "ca = \"10.0.1.9\"\nvsid = 5002", "ca = \"10.0.1.9\"\nvsid = -3"));
    has(&e, "lookup[4] (ca 10.0.1.9, vsid -3)", "vsid", "outside the valid range");
    let e = errors(&edit(BASE, "[[acl]]\nvsid = 5001", "[[acl]]\nvsid = 0"));
    has(&e, "acl[0] (vsid 0, priority 100)", "vsid", "outside the valid range");
    let e = errors(&with("[[customer_routes]]\nrouting_domain = \"blue\"\nvsid = 99999999\ndestination = \"10.9.0.0/16\"\nnext_hop = \"10.0.0.7\"\n"));
    has(&e, "customer_routes[0]", "vsid", "outside the valid range");
}

// ---- lookup uniqueness -------------------------------------------------------

#[test]
fn duplicate_ca_within_vsid() {
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.7\"\nvsid = 5001\nmac = \"00:15:5d:01:00:99\"\npa = \"192.168.4.22\"\n"));
    has(&e, "lookup[5] (ca 10.0.0.7, vsid 5001)", "ca", "already mapped by lookup[2]");
}

#[test]
fn same_ca_in_other_vsid_is_fine() {
    // 10.0.0.7 exists in 5001 and 6001 already; add it to 5002 too.
    ok(&with("[[lookup]]\nca = \"10.0.0.7\"\nvsid = 5002\nmac = \"00:15:5d:01:01:07\"\npa = \"192.168.4.22\"\n"));
}

#[test]
fn one_vm_two_cas_same_mac_is_allowed() {
    let p = ok(&with(
        "[[lookup]]\nca = \"fd00::7\"\nvsid = 5001\nmac = \"00:15:5d:01:00:07\"\npa = \"192.168.4.22\"\n\
         [[lookup]]\nca = \"10.0.0.77\"\nvsid = 5001\nmac = \"00:15:5d:01:00:07\"\npa = \"192.168.4.22\"\n",
    ));
    assert_eq!(p.lookup.len(), 7);
}

#[test]
fn one_mac_on_two_hosts_is_rejected() {
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.77\"\nvsid = 5001\nmac = \"00:15:5d:01:00:07\"\npa = \"192.168.4.33\"\n"));
    has(&e, "lookup[5]", "pa", "one VM cannot be on two hosts");
}

// ---- routing domains ---------------------------------------------------------

#[test]
fn vsid_declared_by_two_subnets() {
    let e = errors(&with("[[subnets]]\nvsid = 5001\nrouting_domain = \"red\"\nprefixes = [\"10.5.0.0/24\"]\n"));
    has(&e, "subnets[3] (vsid 5001)", "vsid", "already declared by subnets[0]");
}

#[test]
fn customer_route_disagrees_with_subnet_rd() {
    let e = errors(&with("[[customer_routes]]\nrouting_domain = \"red\"\nvsid = 5001\ndestination = \"10.9.0.0/16\"\nnext_hop = \"10.0.0.7\"\n"));
    has(&e, "customer_routes[0] (rd red, vsid 5001, 10.9.0.0/16)", "vsid", "belongs to routing domain 'blue'");
}

#[test]
fn customer_route_checks() {
    let p = ok(&with("[[customer_routes]]\nrouting_domain = \"blue\"\nvsid = 5001\ndestination = \"10.9.0.0/16\"\nnext_hop = \"10.0.0.7\"\nmetric = 5\n"));
    assert_eq!(p.customer_routes.len(), 1);
    assert!(!p.customer_routes[0].is_on_link());
    let e = errors(&with(
        "[[customer_routes]]\nrouting_domain = \"green\"\nvsid = 5001\ndestination = \"10.9.0.0/16\"\nnext_hop = \"::\"\n\
         [[customer_routes]]\nrouting_domain = \"blue\"\nvsid = 5001\ndestination = \"10.9.0.1/16\"\nnext_hop = \"0.0.0.0\"\n\
         [[customer_routes]]\nrouting_domain = \"blue\"\nvsid = 7777\ndestination = \"10.9.0.0/16\"\nnext_hop = \"0.0.0.0\"\n\
         [[customer_routes]]\nrouting_domain = \"blue\"\nvsid = 5001\ndestination = \"10.8.0.0/16\"\nnext_hop = \"0.0.0.0\"\n\
         [[customer_routes]]\nrouting_domain = \"blue\"\nvsid = 5001\ndestination = \"10.8.0.0/16\"\nnext_hop = \"0.0.0.0\"\nmetric = -1\n",
    ));
    has(&e, "customer_routes[0]", "routing_domain", "no routing domain is named 'green'");
    has(&e, "customer_routes[0]", "next_hop", "IPv6 but the destination is not");
    has(&e, "customer_routes[1]", "destination", "host bits set");
    has(&e, "customer_routes[2]", "vsid", "no subnet declares VSID 7777");
    has(&e, "customer_routes[4]", "destination", "already declared by customer_routes[3]");
    has(&e, "customer_routes[4]", "metric", "outside 0..=4294967295");
}

#[test]
fn unknown_routing_domain_in_subnet() {
    let e = errors(&edit(BASE, "vsid = 6001\nrouting_domain = \"red\"", "vsid = 6001\nrouting_domain = \"rouge\""));
    has(&e, "subnets[2] (vsid 6001)", "routing_domain", "no routing domain is named 'rouge'");
}

#[test]
fn routing_domain_name_and_guid() {
    let e = errors(&with(
        "[[routing_domains]]\nname = \"blue\"\n\
         [[routing_domains]]\nname = \"green\"\nid = \"not-a-guid\"\n\
         [[routing_domains]]\nname = \"pink\"\nid = \"11111111-2222-3333-4444-555555555555\"\n\
         [[routing_domains]]\nname = \"\"\n",
    ));
    has(&e, "routing_domains[2] (blue)", "name", "already declared by routing_domains[0]");
    has(&e, "routing_domains[3] (green)", "id", "is not a GUID");
    has(&e, "routing_domains[4] (pink)", "id", "already the id of routing_domains[0]");
    has(&e, "routing_domains[5] ()", "name", "must not be empty");
}

#[test]
fn overlapping_prefixes_in_one_routing_domain() {
    let e = errors(&edit(BASE, "prefixes = [\"10.0.1.0/24\"]", "prefixes = [\"10.0.0.0/16\"]"));
    has(&e, "subnets[1] (vsid 5002)", "prefixes", "overlaps 10.0.0.0/24 (subnets[0]) in routing domain 'blue'");
}

// ---- ports ---------------------------------------------------------------------

#[test]
fn uplink_reference_must_name_an_uplink_port() {
    let e = errors(&edit(BASE, "uplink = \"uplink\"", "uplink = \"uplnk\""));
    has(&e, "host.provider_addresses[0] (192.168.4.11)", "uplink", "no port is named 'uplnk'");
    let e = errors(&edit(BASE, "uplink = \"uplink\"", "uplink = \"blue1\""));
    has(&e, "host.provider_addresses[0]", "uplink", "has role vm, not uplink");
}

#[test]
fn duplicate_port_name_and_devargs() {
    let e = errors(&with("[[ports]]\nname = \"blue1\"\nrole = \"uplink\"\ndevargs = \"net_ring_h1up\"\n"));
    has(&e, "ports[3] (blue1)", "name", "already used by ports[1]");
    has(&e, "ports[3] (blue1)", "devargs", "already used by ports[0]");
}

#[test]
fn vm_port_needs_vsid_and_mac() {
    let e = errors(&with("[[ports]]\nname = \"x\"\nrole = \"vm\"\ndevargs = \"net_ring_x\"\n"));
    has(&e, "ports[3] (x)", "vsid", "needs a vsid");
    has(&e, "ports[3] (x)", "mac", "needs a mac");
}

#[test]
fn vm_port_vsid_needs_subnet() {
    let e = errors(&with("[[ports]]\nname = \"x\"\nrole = \"vm\"\ndevargs = \"net_ring_x\"\nvsid = 7001\nmac = \"00:15:5d:07:00:01\"\n"));
    has(&e, "ports[3] (x)", "vsid", "no subnet declares VSID 7001");
}

#[test]
fn vm_port_address_needs_lookup_record() {
    let e = errors(&edit(BASE, "addresses = [\"10.0.0.5\"]\n\n[[ports]]\nname = \"red1\"", "addresses = [\"10.0.0.5\", \"10.0.0.6\"]\n\n[[ports]]\nname = \"red1\""));
    has(&e, "ports[1] (blue1)", "addresses", "10.0.0.6 has no lookup record with VSID 5001");
}

#[test]
fn uplink_with_vsid_or_addresses() {
    let e = errors(&edit(BASE, "devargs = \"net_ring_h1up\"", "devargs = \"net_ring_h1up\"\nvsid = 5001\naddresses = [\"10.0.0.9\"]"));
    has(&e, "ports[0] (uplink)", "vsid", "uplink port carries no VSID");
    has(&e, "ports[0] (uplink)", "addresses", "no customer addresses");
}

#[test]
fn bad_role_and_mtu() {
    let e = errors(&with("[[ports]]\nname = \"x\"\nrole = \"router\"\ndevargs = \"net_ring_x\"\nmtu = 20\n"));
    has(&e, "ports[3] (x)", "role", "not a port role");
    has(&e, "ports[3] (x)", "mtu", "outside 68..=65535");
}

#[test]
fn too_many_ports() {
    let mut t = BASE.to_string();
    for i in 0..62 {
        t.push_str(&format!("\n[[ports]]\nname = \"u{i}\"\nrole = \"uplink\"\ndevargs = \"net_ring_u{i}\"\n"));
    }
    let e = errors(&t);
    has(&e, "ports", "ports", "65 ports; at most 64");
    // Exactly 64 is fine.
    let cut = t.rfind("\n[[ports]]").unwrap_or(t.len());
    ok(&t[..cut]);
}

#[test]
fn duplicate_vm_mac_in_vsid() {
    let e = errors(&edit(BASE, "mac = \"00:15:5d:02:00:05\"\naddresses", "mac = \"00:15:5d:01:00:05\"\naddresses"));
    // red1 is in 6001, so this is legal between VSIDs ...
    assert!(!e.iter().any(|e| e.record.starts_with("ports[2]") && e.field == "mac"));
    // ... but not within one.
    let e = errors(&with("[[ports]]\nname = \"x\"\nrole = \"vm\"\ndevargs = \"net_ring_x\"\nvsid = 5001\nmac = \"00:15:5d:01:00:05\"\n"));
    has(&e, "ports[3] (x)", "mac", "already the MAC of ports[1] in VSID 5001");
}

// ---- malformed values ------------------------------------------------------------

#[test]
fn malformed_mac_ip_prefix() {
    let e = errors(&edit(BASE, "mac = \"02:00:c0:a8:04:0b\"", "mac = \"02:00:c0:a8:04\""));
    has(&e, "host.provider_addresses[0]", "mac", "is not a MAC address");
    let e = errors(&edit(BASE, "address = \"192.168.4.22\"", "address = \"192.168.4.300\""));
    has(&e, "host.neighbors[0] (192.168.4.300)", "address", "is not an IP address");
    let e = errors(&edit(BASE, "prefixes = [\"10.0.1.0/24\"]", "prefixes = [\"10.0.1.1/24\"]"));
    has(&e, "subnets[1]", "prefixes", "host bits set (did you mean 10.0.1.0/24?)");
    let e = errors(&edit(BASE, "destination = \"0.0.0.0/0\"", "destination = \"0.0.0.0/40\""));
    has(&e, "host.provider_routes[0]", "destination", "prefix length '40' is invalid");
}

#[test]
fn multicast_mac_for_port_or_record() {
    let e = errors(&edit(BASE, "mac = \"00:15:5d:01:00:05\"\naddresses", "mac = \"01:00:5e:01:00:05\"\naddresses"));
    has(&e, "ports[1] (blue1)", "mac", "multicast");
    let e = errors(&edit(BASE, "mac = \"00:15:5d:01:01:09\"", "mac = \"ff:ff:ff:ff:ff:ff\""));
    has(&e, "lookup[4]", "mac", "multicast");
}

// ---- lookup rule/type/PA ---------------------------------------------------------

#[test]
fn nat_rule_is_unsupported() {
    let e = errors(&edit(BASE, "vm_name = \"Blue2\"", "vm_name = \"Blue2\"\nrule = \"nat\""));
    has(&e, "lookup[2] (ca 10.0.0.7, vsid 5001)", "rule", "'nat' (IP address rewrite) is not supported");
    let e = errors(&edit(BASE, "vm_name = \"Blue2\"", "vm_name = \"Blue2\"\nrule = \"tunnel\""));
    has(&e, "lookup[2]", "rule", "not a rule");
    let e = errors(&edit(BASE, "vm_name = \"Blue2\"", "vm_name = \"Blue2\"\ntype = \"dynamic\""));
    has(&e, "lookup[2]", "type", "'dynamic' is not supported");
}

#[test]
fn rule_none_needs_pa_equal_ca() {
    let p = ok(&with("[[lookup]]\nca = \"10.0.0.50\"\nvsid = 5001\nmac = \"00:15:5d:01:00:50\"\npa = \"10.0.0.50\"\nrule = \"none\"\n"));
    assert_eq!(p.lookup[5].rule, Rule::None);
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.50\"\nvsid = 5001\nmac = \"00:15:5d:01:00:50\"\npa = \"192.168.4.99\"\nrule = \"none\"\n"));
    has(&e, "lookup[5]", "pa", "pa must equal the CA 10.0.0.50");
}

#[test]
fn local_pa_without_local_port() {
    let e = errors(&edit(BASE, "pa = \"192.168.4.22\"\nvm_name = \"Blue2\"", "pa = \"192.168.4.11\"\nvm_name = \"Blue2\""));
    has(&e, "lookup[2] (ca 10.0.0.7, vsid 5001)", "pa", "PA 192.168.4.11 is this host's but no local port in VSID 5001 has MAC 00:15:5d:01:00:07");
    let line = e.iter().map(ToString::to_string).find(|l| l.contains("lookup[2]")).unwrap_or_default();
    assert_eq!(line, "lookup[2] (ca 10.0.0.7, vsid 5001): field 'pa': PA 192.168.4.11 is this host's but no local port in VSID 5001 has MAC 00:15:5d:01:00:07");
}

#[test]
fn port_backed_record_needs_local_pa() {
    let e = errors(&edit(BASE, "pa = \"192.168.4.11\"\nvm_name = \"Blue1\"", "pa = \"192.168.4.22\"\nvm_name = \"Blue1\""));
    has(&e, "lookup[0] (ca 10.0.0.5, vsid 5001)", "pa", "is local port 'blue1' in VSID 5001, so pa must be one of this host's provider addresses (192.168.4.11)");
    // The port's address is then also uncovered.
    has(&e, "ports[1] (blue1)", "addresses", "10.0.0.5 has no lookup record");
}

#[test]
fn shared_records_let_a_vm_port_be_elsewhere() {
    let moved = edit(BASE, "pa = \"192.168.4.11\"\nvm_name = \"Blue1\"", "pa = \"192.168.4.33\"\nvm_name = \"Blue1\"");
    let shared = Options { shared_records: true };
    // Blue1 moved to 192.168.4.33 while its port is still here: refused from a
    // file (above), accepted when the records are shared (etcd).
    let p = match parse_with(&moved, "etcd", shared) {
        Ok(p) => p,
        Err(e) => panic!("expected a valid policy:\n{e}"),
    };
    let blue1 = p.lookup.iter().find(|r| r.vsid.get() == 5001 && r.ca == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
    assert_eq!(blue1.map(|r| r.pa), Some(IpAddr::V4(Ipv4Addr::new(192, 168, 4, 33))));
    assert!(p.ports.iter().any(|q| q.name == "blue1"));
    // What stays an error: a port address without any record for its VSID and MAC,
    // and a record at this host's PA without a local port.
    let uncovered = edit(BASE, "devargs = \"net_ring_h1blue1\"", "devargs = \"net_ring_h1blue1\"\naddresses = [\"10.0.0.99\"]").replacen("addresses = [\"10.0.0.5\"]\n", "", 1);
    let e = match parse_with(&uncovered, "etcd", shared) {
        Err(PolicyError::Invalid { errors, .. }) => errors,
        other => panic!("{other:?}"),
    };
    has(&e, "ports[1] (blue1)", "addresses", "10.0.0.99 has no lookup record with VSID 5001 and MAC 00:15:5d:01:00:05");
    let e = match parse_with(&with("[[lookup]]\nca = \"10.0.0.60\"\nvsid = 5001\nmac = \"00:15:5d:01:00:60\"\npa = \"192.168.4.11\"\n"), "etcd", shared) {
        Err(PolicyError::Invalid { errors, .. }) => errors,
        other => panic!("{other:?}"),
    };
    has(&e, "lookup[5]", "pa", "is this host's but no local port");
}

#[test]
fn pa_family_needs_local_pa_of_that_family() {
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.60\"\nvsid = 5001\nmac = \"00:15:5d:01:00:60\"\npa = \"fd00::22\"\n"));
    has(&e, "lookup[5]", "pa", "no IPv6 provider address");
}

#[test]
fn gateway_wildcard_ca() {
    let p = ok(&with("[[lookup]]\nca = \"0.0.0.0\"\nvsid = 5001\nmac = \"00:15:5d:01:00:fe\"\npa = \"192.168.4.33\"\ntype = \"gateway_wildcard\"\n"));
    assert_eq!(p.lookup[5].kind, RecordType::GatewayWildcard);
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.254\"\nvsid = 5001\nmac = \"00:15:5d:01:00:fe\"\npa = \"192.168.4.33\"\ntype = \"gateway_wildcard\"\n"));
    has(&e, "lookup[5]", "ca", "must be 0.0.0.0 or ::");
    let e = errors(&with("[[lookup]]\nca = \"::\"\nvsid = 5001\nmac = \"00:15:5d:01:00:fe\"\npa = \"192.168.4.33\"\n"));
    has(&e, "lookup[5] (ca ::, vsid 5001)", "ca", "not a unicast address");
}

#[test]
fn lookup_ca_or_mac_is_the_gateway() {
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.1\"\nvsid = 5001\nmac = \"02:48:4e:00:13:89\"\npa = \"192.168.4.33\"\n"));
    has(&e, "lookup[5]", "ca", "is the gateway address of VSID 5001");
    has(&e, "lookup[5]", "mac", "is the gateway MAC of VSID 5001");
}

#[test]
fn lookup_vsid_needs_subnet() {
    let e = errors(&with("[[lookup]]\nca = \"10.0.0.1\"\nvsid = 7001\nmac = \"00:15:5d:07:00:01\"\npa = \"192.168.4.33\"\n"));
    has(&e, "lookup[5]", "vsid", "no subnet declares VSID 7001");
}

// ---- ACL ---------------------------------------------------------------------------

#[test]
fn acl_family_protocol_ports() {
    let e = errors(&with(
        "[[acl]]\nvsid = 5001\npriority = 1\naction = \"deny\"\nprotocol = \"icmp\"\nsrc = \"fd00::/64\"\n\
         [[acl]]\nvsid = 5001\npriority = 2\naction = \"deny\"\nprotocol = \"icmpv6\"\ndst = \"10.0.0.0/24\"\n\
         [[acl]]\nvsid = 5001\npriority = 3\naction = \"deny\"\nprotocol = \"tcp\"\ndst_ports = \"2000-1000\"\n\
         [[acl]]\nvsid = 5001\npriority = 4\naction = \"deny\"\nprotocol = \"icmp\"\nsrc_ports = \"80\"\n\
         [[acl]]\nvsid = 5001\npriority = 5\naction = \"deny\"\nsrc = \"10.0.0.0/24\"\ndst = \"fd00::/64\"\n\
         [[acl]]\nvsid = 5001\npriority = 6\naction = \"drop\"\ndirection = \"up\"\nprotocol = \"sctp\"\n\
         [[acl]]\nvsid = 5001\npriority = 7\naction = \"deny\"\nprotocol = 300\n\
         [[acl]]\nvsid = 7001\npriority = 8\naction = \"deny\"\n",
    ));
    has(&e, "acl[1] (vsid 5001, priority 1)", "src", "IPv6 but protocol icmp is IPv4 only");
    has(&e, "acl[2]", "dst", "IPv4 but protocol icmpv6 is IPv6 only");
    has(&e, "acl[3]", "dst_ports", "port range 2000-1000 is empty");
    has(&e, "acl[4]", "src_ports", "only to tcp and udp, not protocol icmp");
    has(&e, "acl[5]", "dst", "different address families");
    has(&e, "acl[6]", "action", "not an action");
    has(&e, "acl[6]", "direction", "not a direction");
    has(&e, "acl[6]", "protocol", "not a protocol");
    has(&e, "acl[7]", "protocol", "outside 0..=255");
    has(&e, "acl[8]", "vsid", "no subnet declares VSID 7001");
}

#[test]
fn acl_sorted_by_vsid_then_priority_stably() {
    let p = ok(&with(
        "[[acl]]\nvsid = 6001\npriority = 5\naction = \"deny\"\n\
         [[acl]]\nvsid = 5001\npriority = 100\naction = \"allow\"\nprotocol = 17\n\
         [[acl]]\nvsid = 5001\npriority = 7\naction = \"allow\"\nprotocol = \"udp\"\nsrc_ports = 53\ndst_ports = \"1024-65535\"\n",
    ));
    let order: Vec<(u32, u32, AclAction)> = p.acl.iter().map(|r| (r.vsid.get(), r.priority, r.action)).collect();
    assert_eq!(order, vec![(5001, 7, AclAction::Allow), (5001, 100, AclAction::Deny), (5001, 100, AclAction::Allow), (6001, 5, AclAction::Deny)]);
    assert_eq!(p.acl[0].src_ports, Some((53, 53)));
    assert_eq!(p.acl[0].dst_ports, Some((1024, 65535)));
    assert_eq!(p.acl[0].direction, Direction::Both);
}

#[test]
fn example_acl_denies_inbound_telnet_only() {
    let p = ok(BASE);
    let v = Vsid::new(5001).expect("valid");
    let rules = p.acl_for(v);
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.7".parse().expect("ip"), "10.0.0.5".parse().expect("ip"));
    assert_eq!(crate::classify(rules, Direction::In, 6, a, b, 40000, 23), AclAction::Deny);
    assert_eq!(crate::classify(rules, Direction::Out, 6, b, a, 40000, 23), AclAction::Allow);
    assert_eq!(crate::classify(rules, Direction::In, 6, a, b, 40000, 22), AclAction::Allow);
    assert!(p.acl_for(Vsid::new(6001).expect("valid")).is_empty());
}

// ---- subnets ---------------------------------------------------------------------

#[test]
fn gateway_outside_prefixes() {
    let e = errors(&edit(BASE, "gateway_v4 = \"10.0.1.1\"", "gateway_v4 = \"10.0.2.1\""));
    has(&e, "subnets[1] (vsid 5002)", "gateway_v4", "gateway 10.0.2.1 lies outside the subnet's prefixes 10.0.1.0/24");
    let e = errors(&edit(BASE, "gateway_v4 = \"10.0.1.1\"", "gateway_v4 = \"10.0.1.1\"\ngateway_v6 = \"fd00::1\""));
    has(&e, "subnets[1]", "gateway_v6", "lies outside");
    let e = errors(&edit(BASE, "gateway_v4 = \"10.0.1.1\"", "gateway_v4 = \"fd00::1\""));
    has(&e, "subnets[1]", "gateway_v4", "not an IPv4 address");
}

#[test]
fn gateway_mac_default_and_explicit() {
    let p = ok(BASE);
    let s = p.subnet(Vsid::new(5001).expect("valid")).expect("subnet");
    assert_eq!(s.gateway_mac, EthernetAddress([0x02, 0x48, 0x4e, 0x00, 0x13, 0x89]));
    let p = ok(&edit(BASE, "gateway_v4 = \"10.0.1.1\"", "gateway_v4 = \"10.0.1.1\"\ngateway_mac = \"02:00:00:00:50:02\""));
    let s = p.subnet(Vsid::new(5002).expect("valid")).expect("subnet");
    assert_eq!(s.gateway_mac, EthernetAddress([2, 0, 0, 0, 0x50, 0x02]));
    assert_eq!(p.routing_domain_of(Vsid::new(5002).expect("valid")), Some("blue"));
}

// ---- host --------------------------------------------------------------------------

#[test]
fn host_needs_a_provider_address() {
    let start = BASE.find("[[host.provider_addresses]]").unwrap_or(0);
    let end = BASE.find("[[host.provider_routes]]").unwrap_or(0);
    let t = format!("{}{}", &BASE[..start], &BASE[end..]);
    let e = errors(&t);
    has(&e, "host", "provider_addresses", "at least one provider address");
}

#[test]
fn host_field_checks() {
    let e = errors(&edit(BASE, "prefix_len = 24", "prefix_len = 33\nvlan = 4095"));
    has(&e, "host.provider_addresses[0]", "prefix_len", "outside 0..=32");
    has(&e, "host.provider_addresses[0]", "vlan", "outside 1..=4094");
    let e = errors(&edit(BASE, "next_hop = \"192.168.4.1\"", "next_hop = \"192.168.5.1\""));
    has(&e, "host.provider_routes[0]", "next_hop", "not on-link");
    let e = errors(&edit(BASE, "address = \"192.168.4.22\"", "address = \"192.168.4.11\""));
    has(&e, "host.neighbors[0]", "address", "this host's own provider address");
    let e = errors(&edit(BASE, "name = \"host1\"", "name = \"\""));
    has(&e, "host", "name", "must not be empty");
    let p = ok(&edit(BASE, "prefix_len = 24", "prefix_len = 24\nvlan = 100"));
    assert_eq!(p.host.provider_addresses[0].vlan, Some(100));
    assert_eq!(p.host.neighbor("192.168.4.22".parse().expect("ip")), Some(EthernetAddress([2, 0, 0xc0, 0xa8, 4, 0x16])));
}

// ---- reporting -----------------------------------------------------------------------

#[test]
fn all_errors_are_collected_and_printed_one_per_line() {
    let t = edit(&edit(BASE, "prefixes = [\"10.0.1.0/24\"]", "prefixes = [\"10.0.1.1/24\"]"), "uplink = \"uplink\"", "uplink = \"nope\"");
    let t = format!("{t}\n[[lookup]]\nca = \"10.0.0.7\"\nvsid = 5001\nmac = \"00:15:5d:01:00:99\"\npa = \"192.168.4.22\"\nrule = \"nat\"\n");
    let err = parse(&t, "policy.toml").expect_err("invalid");
    let text = err.to_string();
    assert!(err.field_errors().len() >= 4, "{text}");
    assert_eq!(text.lines().count(), err.field_errors().len());
    assert!(text.lines().all(|l| l.starts_with("policy.toml: ")), "{text}");
    assert!(text.contains("policy.toml: lookup[5] (ca 10.0.0.7, vsid 5001): field 'rule': rule 'nat'"), "{text}");
}

#[test]
fn syntax_errors_have_line_and_column() {
    let t = edit(BASE, "prefix_len = 24", "prefix_len = 24\nbogus = 1");
    match parse(&t, "p.toml") {
        Err(PolicyError::Syntax { origin, line, column, message }) => {
            assert_eq!(origin, "p.toml");
            assert!(message.contains("bogus"), "{message}");
            let expect = t.lines().position(|l| l.starts_with("bogus")).map_or(0, |i| i + 1);
            // toml reports unknown fields at the table; accept the table or the key line.
            assert!(line >= 1 && line <= expect, "line {line} vs {expect}");
            assert!(column >= 1);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    match parse("[host]\nname = \"h\"\n[[ports]\n", "p.toml") {
        Err(e @ PolicyError::Syntax { line: 3, .. }) => {
            assert!(e.to_string().starts_with("p.toml:3:"), "{e}")
        }
        other => panic!("expected a syntax error on line 3, got {other:?}"),
    }
    assert!(matches!(parse("", "p.toml"), Err(PolicyError::Syntax { .. })));
    assert!(matches!(parse("[host]\nname = 5\n", "p.toml"), Err(PolicyError::Syntax { line: 2, .. })));
}

#[test]
fn load_reads_files_and_reports_io() {
    let dir = std::env::temp_dir().join(format!("hnv-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmpdir");
    let path = dir.join("host2.toml");
    std::fs::write(&path, BLUE_RED_HOST2).expect("write");
    let p = load(&path).expect("valid");
    assert_eq!(p.host.name, "host2");
    let missing = dir.join("missing.toml");
    let e = load(&missing).expect_err("missing");
    assert!(matches!(e, PolicyError::Io { .. }));
    assert!(e.to_string().contains("missing.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blue2_lookup_text_is_in_base() {
    assert!(BASE.contains(BLUE2_LOOKUP));
}

#[test]
fn messages_stay_on_one_line() {
    let e = errors(&edit(BASE, "mac = \"02:00:c0:a8:04:0b\"", "mac = \"02:00\\n:c0\\r\""));
    assert!(e.iter().all(|e| !e.to_string().contains('\n') && !e.to_string().contains('\r')));
    has(&e, "host.provider_addresses[0]", "mac", "not a MAC address");
}

#[test]
fn subnet_encap_and_vxlan_port() {
    let p = ok(BASE);
    assert!(p.subnets.iter().all(|s| s.encap == Encap::Nvgre), "nvgre by default");
    assert_eq!(p.host.vxlan_port, VXLAN_PORT);
    let vx = ok(&edit(&edit(BASE, "vsid = 6001\nrouting_domain", "vsid = 6001\nencap = \"vxlan\"\nrouting_domain"), "name = \"host1\"", "name = \"host1\"\nvxlan_port = 8472"));
    let encap = |v: u32| vx.subnets.iter().find(|s| s.vsid.get() == v).map(|s| s.encap);
    assert_eq!(encap(6001), Some(Encap::Vxlan));
    assert_eq!(encap(5001), Some(Encap::Nvgre));
    assert_eq!(vx.host.vxlan_port, 8472);
    assert_eq!(ok(&crate::to_toml(&vx)), vx, "round trip");
    let errs = errors(&edit(BASE, "vsid = 6001\nrouting_domain", "vsid = 6001\nencap = \"geneve\"\nrouting_domain"));
    has(&errs, "subnets[2]", "encap", "not an encapsulation");
    for bad in ["0", "65536", "-1"] {
        let errs = errors(&edit(BASE, "name = \"host1\"", &format!("name = \"host1\"\nvxlan_port = {bad}")));
        has(&errs, "host", "vxlan_port", "not a UDP port");
    }
}

#[test]
fn mss_clamp_is_off_true_or_a_bounded_number() {
    assert_eq!(ok(BASE).host.mss_clamp, crate::MssClamp::Off, "off by default");
    for (v, want) in [("false", crate::MssClamp::Off), ("true", crate::MssClamp::Auto), ("1360", crate::MssClamp::Max(1360)), ("536", crate::MssClamp::Max(536))] {
        let p = ok(&edit(BASE, "name = \"host1\"", &format!("name = \"host1\"\nmss_clamp = {v}")));
        assert_eq!(p.host.mss_clamp, want, "{v}");
        assert_eq!(ok(&crate::to_toml(&p)), p, "round trip of {v}");
    }
    for bad in ["0", "535", "8961", "-1", "70000"] {
        let errs = errors(&edit(BASE, "name = \"host1\"", &format!("name = \"host1\"\nmss_clamp = {bad}")));
        has(&errs, "host", "mss_clamp", "not a TCP MSS");
    }
    assert!(crate::parse(&edit(BASE, "name = \"host1\"", "name = \"host1\"\nmss_clamp = \"yes\""), "t").is_err(), "a string is refused");
}
