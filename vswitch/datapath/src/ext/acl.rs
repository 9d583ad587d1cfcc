//! The VSID ACL filter: per-VSID allow/deny rules on the 5-tuple and
//! direction, first match by priority, default allow within the VSID.
//!
//! Direction is seen from the VM: `out` rules apply on ingress to packets a
//! VM sends; `in` rules apply on egress to packets delivered to a local VM
//! port (locally switched, routed or decapsulated). Non-IP frames are not
//! subject to the ACL. Rules come from the batch's policy snapshot.

use crate::meta::{Meta, NO_PORT};
use crate::pipeline::{Context, FilterDrop, FilterExtension, PacketRef, Stage, Verdicts};
use crate::tables::Role;
use hnv_policy::{classify, AclAction, Direction};

/// The built-in VSID ACL.
#[derive(Debug, Default)]
pub struct VsidAcl;

fn decide(cx: &Context<'_>, dir: Direction, m: &Meta) -> AclAction {
    let Some(vs) = cx.tables.vsid(m.vsid) else { return AclAction::Allow };
    if vs.acl.is_empty() || m.proto == 0 {
        return AclAction::Allow;
    }
    classify(&vs.acl, dir, m.proto, m.src, m.dst, m.sport, m.dport)
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
                Stage::Egress if m.out_port != NO_PORT && cx.tables.port(m.out_port).is_some_and(|e| e.role == Role::Vm) => Direction::In,
                _ => continue,
            };
            if decide(cx, dir, m) == AclAction::Deny {
                verdicts.drop(k, FilterDrop::AclDeny);
            }
        }
    }
}
