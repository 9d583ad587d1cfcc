//! `PolicyState::apply` against `api::apply_all_with` on the whole policy.

use super::*;
use crate::api::apply_all_with;
use crate::example::BLUE_RED_HOST1;
use crate::file::{AclFile, CustomerRouteFile, LookupFile, PortFile};

fn host1() -> Policy {
    crate::parse(BLUE_RED_HOST1, "t").unwrap()
}

/// Records in key order, ACL as is: the form both paths agree on.
fn canonical(mut p: Policy) -> Policy {
    p.lookup.sort_by_key(|r| (r.vsid, r.ca));
    p.customer_routes.sort_by(|a, b| (&a.routing_domain, a.vsid, a.destination.to_string()).cmp(&(&b.routing_domain, b.vsid, b.destination.to_string())));
    p
}

/// `lookup[12]` → `lookup[_]` (also `acl[i]`, `customer_routes[i]`): a
/// record's position differs between the whole policy and a neighbourhood.
fn positionless(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out += &rest[..=i];
        let after = rest[i + 1..].trim_start_matches(|c: char| c.is_ascii_digit());
        if after.len() < rest.len() - i - 1 && after.starts_with(']') {
            out.push('_');
        }
        rest = after;
    }
    out + rest
}

fn rec(ca: &str, vsid: i64, mac: &str, pa: &str) -> LookupFile {
    LookupFile { ca: ca.into(), vsid, mac: mac.into(), pa: pa.into(), ..Default::default() }
}

/// Both paths accept or refuse alike, with the same message, and end equal.
fn agree(p: &Policy, reqs: &[Request]) -> Option<Delta> {
    let mut st = PolicyState::new(p.clone());
    let whole = apply_all_with(p, reqs, Options::default());
    let part = st.apply(reqs, Options::default());
    match (whole, part) {
        (Ok(Some(w)), Ok(d)) => {
            assert_eq!(canonical(st.to_policy()), canonical(w), "{reqs:?}");
            Some(d)
        }
        (Ok(None), Ok(d)) => {
            assert!(d.is_empty());
            assert_eq!(canonical(st.to_policy()), canonical(p.clone()));
            Some(d)
        }
        (Err(w), Err(e)) => {
            assert_eq!(positionless(&w.to_string()), positionless(&e.to_string()), "{reqs:?}");
            assert_eq!(canonical(st.to_policy()), canonical(p.clone()), "a refused change leaves the policy as it was");
            None
        }
        (w, e) => panic!("the whole policy says {w:?}, the neighbourhood {e:?} for {reqs:?}"),
    }
}

#[test]
fn record_changes_agree_with_whole_validation_and_name_what_changed() {
    let p = host1();
    let d = agree(&p, &[Request::ReplaceRecord { record: rec("10.0.0.7", 5001, "00:15:5d:01:00:07", "192.168.4.33") }]).unwrap();
    assert_eq!(d.records, vec![(Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap())]);
    assert!(!d.ports && !d.routes && !d.acl);
    // Added, then one bad record in the same transaction: all refused.
    let add = Request::AddRecord { record: rec("10.0.0.40", 5001, "00:15:5d:01:00:40", "192.168.4.22") };
    assert_eq!(agree(&p, std::slice::from_ref(&add)).unwrap().records.len(), 1);
    assert!(agree(&p, &[add.clone(), Request::AddRecord { record: rec("10.0.0.41", 5001, "ff:ff:ff:ff:ff:ff", "192.168.4.22") }]).is_none());
    // Duplicates, missing records, a VM on two hosts, a local port's record elsewhere.
    assert!(agree(&p, &[add.clone(), add.clone()]).is_none());
    assert!(agree(&p, &[Request::RemoveRecord { vsid: 5001, ca: "10.9.9.9".into() }]).is_none());
    assert!(agree(&p, &[Request::AddRecord { record: rec("10.0.0.42", 5001, "00:15:5d:01:00:07", "192.168.4.33") }]).is_none());
    assert!(agree(&p, &[Request::ReplaceRecord { record: rec("10.0.0.5", 5001, "00:15:5d:01:00:05", "192.168.4.22") }]).is_none());
    assert!(agree(&p, &[Request::RemoveRecord { vsid: 5001, ca: "10.0.0.5".into() }]).is_none(), "Blue1's port needs its record");
    assert!(agree(&p, &[Request::AddRecord { record: rec("10.0.0.43", 77, "00:15:5d:01:00:43", "192.168.4.22") }]).is_none());
    assert!(agree(&p, &[Request::AddRecord { record: rec("10.0.0.1", 5001, "00:15:5d:01:00:43", "192.168.4.22") }]).is_none(), "the gateway");
    // Same content: accepted, nothing changed.
    let same = p.lookup_record(Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap()).unwrap().clone();
    let d = agree(&p, &[Request::ReplaceRecord { record: rec("10.0.0.7", 5001, "00:15:5d:01:00:07", &same.pa.to_string()) }]).unwrap();
    assert!(d.records.is_empty() || same.vm_name.is_some(), "{d:?}");
}

#[test]
fn routes_acl_and_ports_agree_and_are_flagged() {
    let p = host1();
    let route = CustomerRouteFile { routing_domain: "blue".into(), vsid: 5001, destination: "172.16.0.0/16".into(), next_hop: "10.0.0.7".into(), metric: 1 };
    let d = agree(&p, &[Request::AddRoute { route: route.clone() }]).unwrap();
    assert!(d.routes && d.records.is_empty());
    assert!(agree(&p, &[Request::AddRoute { route: CustomerRouteFile { routing_domain: "red".into(), ..route.clone() } }]).is_none(), "VSID 5001 is not red's");
    let rule = AclFile {
        vsid: 6001,
        priority: 5,
        direction: Some("in".into()),
        action: "deny".into(),
        protocol: Some(crate::file::TextOrNumber::Text("udp".into())),
        dst_ports: Some(crate::file::TextOrNumber::Number(53)),
        ..Default::default()
    };
    let d = agree(&p, &[Request::AddAcl { rule: rule.clone() }]).unwrap();
    assert!(d.acl);
    assert!(agree(&p, &[Request::AddAcl { rule: AclFile { protocol: Some(crate::file::TextOrNumber::Text("icmp".into())), ..rule.clone() } }]).is_none());
    assert!(agree(&p, &[Request::RemoveAcl { vsid: 5001, priority: 999 }]).is_none());
    let port =
        PortFile { name: "blue9".into(), role: "vm".into(), devargs: "net_null_blue9".into(), vsid: Some(5001), mac: Some("00:15:5d:01:00:99".into()), addresses: vec!["10.0.0.99".into()], mtu: None };
    assert!(agree(&p, &[Request::AddPort { port: port.clone(), records: vec![] }]).is_none());
    let d = agree(&p, &[Request::AddPort { port: port.clone(), records: vec![rec("10.0.0.99", 5001, "00:15:5d:01:00:99", "192.168.4.11")] }]).unwrap();
    assert!(d.ports && d.records.len() == 1);
    assert!(agree(&p, &[Request::RemovePort { name: "blue1".into(), with_records: false, moved_to: None }]).is_none());
    let d = agree(&p, &[Request::RemovePort { name: "blue1".into(), with_records: false, moved_to: Some("192.168.4.33".into()) }]).unwrap();
    assert!(d.ports && d.records.len() == 1, "{d:?}");
    agree(&p, &[Request::RemovePort { name: "blue1".into(), with_records: true, moved_to: None }]).unwrap();
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    fn request() -> impl Strategy<Value = Request> {
        let vsid = prop::sample::select(vec![5001i64, 5002, 6001, 77]);
        let ca = (2u8..12).prop_map(|k| format!("10.0.{}.{k}", k % 2));
        let mac = (0u8..6).prop_map(|k| format!("00:15:5d:01:00:{:02x}", [5, 7, 9, 0x40, 0x41, 0xff][k as usize]));
        let pa = prop::sample::select(vec!["192.168.4.11", "192.168.4.22", "192.168.4.33", "10.0.0.5"]);
        let record = (vsid.clone(), ca.clone(), mac, pa).prop_map(|(vsid, ca, mac, pa)| rec(&ca, vsid, &mac, pa));
        prop_oneof![
            record.clone().prop_map(|record| Request::AddRecord { record }),
            record.prop_map(|record| Request::ReplaceRecord { record }),
            (vsid.clone(), ca).prop_map(|(vsid, ca)| Request::RemoveRecord { vsid, ca }),
            (vsid.clone(), 1i64..4).prop_map(|(vsid, priority)| Request::AddAcl {
                rule: AclFile { vsid, priority, action: "deny".into(), protocol: Some(crate::file::TextOrNumber::Text("tcp".into())), ..Default::default() }
            }),
            (vsid, 1i64..4).prop_map(|(vsid, priority)| Request::RemoveAcl { vsid, priority }),
            prop::sample::select(vec!["blue1", "red1", "nope"]).prop_map(|name| Request::RemovePort { name: name.into(), with_records: true, moved_to: None }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Transactions of random changes, applied one after another: the
        /// neighbourhood and the whole policy accept, refuse and end alike.
        #[test]
        fn random_transactions_agree(txs in prop::collection::vec(prop::collection::vec(request(), 1..4), 1..6)) {
            let mut p = host1();
            for reqs in txs {
                agree(&p, &reqs);
                if let Ok(Some(next)) = apply_all_with(&p, &reqs, Options::default()) {
                    p = next;
                }
            }
        }
    }
}

#[test]
fn a_diff_replays_as_changes_to_the_same_policy() {
    let p = host1();
    let mut q = p.clone();
    q.lookup.retain(|r| r.vm_name.as_deref() != Some("Red2"));
    q.lookup.iter_mut().filter(|r| r.vm_name.as_deref() == Some("Blue2")).for_each(|r| r.pa = "192.168.4.33".parse().unwrap());
    q.acl[0].priority += 1;
    let reqs = diff(&p, &q).unwrap();
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    let mut st = PolicyState::new(p.clone());
    st.apply(&reqs, Options::default()).unwrap();
    assert_eq!(canonical(st.to_policy()), canonical(q.clone()));
    let mut other_ports = p.clone();
    other_ports.ports.pop();
    assert!(diff(&p, &other_ports).is_none());
}
