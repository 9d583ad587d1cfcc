//! Bonded uplinks as `hnvctl show ports` and the metrics show them.
//!
//! The bond itself is DPDK's bonding PMD (`pmd::dpdk::bond`); the runtime
//! watches it for failovers ([`crate::runtime::Runtime::watch_bonds`]). This
//! module only turns a bond's status into the flat columns of a port row.
//! Control side only.

use pmd::dpdk::Port;

/// The bond columns of a port row (absent for a port that is not a bond).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BondRow {
    /// Mode, and the transmit hash policy of a balancing mode: `active-backup`, `balance-xor l34`,
    /// `balance-xor flow` (the switch's flow-entropy policy, `balance = "flow"`).
    pub bond: String,
    /// Every member with its link and role: `net_ring_a(up,active) net_ring_b(up,backup)`.
    pub members: String,
    /// The member(s) carrying traffic now.
    pub active_member: String,
    /// Failovers since the port was opened.
    pub failovers: u64,
    /// Kernel carrier changes of `net_af_packet` members since the port was
    /// opened (0 when no member is af_packet).
    pub carrier_changes: u64,
}

/// The bond columns of `port`, or `None` when it is not a bond.
pub fn row(port: &Port) -> Option<BondRow> {
    let s = port.bond_status()?;
    // A flow-balanced bond is transmitted on by the workers, by flow entropy, not by DPDK's policy.
    let policy = if port.flow_balanced() { Some("flow") } else { s.xmit_policy };
    let bond = match policy {
        Some(x) => format!("{} {x}", s.mode_name()),
        None => s.mode_name().to_string(),
    };
    let members = s
        .members
        .iter()
        .map(|m| {
            let role = if !m.active {
                "inactive"
            } else if s.mode != 1 || m.primary {
                "active"
            } else {
                "backup"
            };
            format!("{}({},{role})", m.name, if m.link_up { "up" } else { "down" })
        })
        .collect::<Vec<_>>()
        .join(" ");
    let active_member = s.transmitting().iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" ");
    Some(BondRow { bond, members, active_member, failovers: port.failovers(), carrier_changes: port.carrier_changes() })
}
