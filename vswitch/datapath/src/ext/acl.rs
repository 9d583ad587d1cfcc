//! The VSID ACL filter: per-VSID allow/deny rules on the 5-tuple and
//! direction, first match by priority, default allow within the VSID.
//!
//! Direction is seen from the VM: `out` rules apply on ingress to packets a
//! VM sends; `in` rules apply on egress to packets delivered to local VM
//! ports: locally switched, routed, decapsulated, or flooded (a broadcast or
//! multicast frame, whatever IP destination it carries, goes to local ports
//! of its VSID only, and one VSID's rules are the same for each of them, so
//! one decision covers every copy). Non-IP frames are not subject to the
//! ACL; IP packets of any protocol are. When the transport ports are unknown
//! ([`Meta::ports_unknown`]: a non-first fragment), a rule with a port range
//! is assumed to match if it denies and not to match if it allows, so no
//! port-specific deny can be bypassed by fragmenting. Rules come from the
//! batch's policy snapshot.

use crate::meta::{Meta, NO_PORT};
use crate::pipeline::{Context, FilterDrop, FilterExtension, PacketRef, Stage, Verdicts};
use crate::tables::Role;
use hnv_policy::{classify, AclAction, AclRule, Direction};
use std::net::IpAddr;

/// The built-in VSID ACL.
#[derive(Debug, Default)]
pub struct VsidAcl;

fn decide(cx: &Context<'_>, dir: Direction, m: &Meta) -> AclAction {
    let Some(vs) = cx.tables.vsid(m.vsid) else { return AclAction::Allow };
    if vs.acl.is_empty() || (m.ethertype != 0x0800 && m.ethertype != 0x86dd) {
        return AclAction::Allow;
    }
    if m.ports_unknown {
        return classify_without_ports(&vs.acl, dir, m.proto, m.src, m.dst);
    }
    classify(&vs.acl, dir, m.proto, m.src, m.dst, m.sport, m.dport)
}

/// First match with the ports unknown: a deny rule matches whatever its
/// ports; an allow rule with a port range does not (skipped).
fn classify_without_ports(rules: &[AclRule], dir: Direction, proto: u8, src: IpAddr, dst: IpAddr) -> AclAction {
    for r in rules {
        // Ports inside the rule's own ranges: everything but the ports is checked.
        let (sp, dp) = (r.src_ports.map_or(0, |p| p.0), r.dst_ports.map_or(0, |p| p.0));
        if !r.matches(dir, proto, src, dst, sp, dp) {
            continue;
        }
        if r.action == AclAction::Deny || (r.src_ports.is_none() && r.dst_ports.is_none()) {
            return r.action;
        }
    }
    AclAction::Allow
}

impl FilterExtension for VsidAcl {
    fn name(&self) -> &'static str {
        "vsid-acl"
    }

    fn cacheable(&self) -> bool {
        true
    }

    fn filter(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>], verdicts: &mut Verdicts<'_>) {
        for (k, p) in pkts.iter().enumerate() {
            let m = p.meta;
            let dir = match stage {
                Stage::Ingress if !m.from_uplink => Direction::Out,
                Stage::Egress if m.flooded => Direction::In,
                Stage::Egress if m.out_port != NO_PORT && cx.tables.port(m.out_port).is_some_and(|e| e.role == Role::Vm) => Direction::In,
                _ => continue,
            };
            if decide(cx, dir, m) == AclAction::Deny {
                verdicts.drop(k, FilterDrop::AclDeny);
            }
        }
    }
}
