//! Kernel carrier of `net_af_packet` bond members, watched by the switch.
//!
//! DPDK 22.11's `net_af_packet` never reads its interface's state: its link
//! update is a no-op, it has no `set_link_down/up` (`-ENOTSUP`), and its link
//! is "up" from start to stop (stopping it closes its sockets for good). So a
//! bond of af_packet members (veth pairs, a kernel NIC) never sees a member go
//! down. [`CarrierMirror`] does it on the control thread: each
//! [`CarrierMirror::poll`] reads the kernel carrier of every af_packet
//! member's interface (`/sys/class/net/IFACE/carrier`: `1` up, `0` down;
//! unreadable, as for an interface set down or gone, is down), counts and
//! reports changes, and in active-backup mode moves the bond's primary with
//! the bonding PMD's public `rte_eth_bond_primary_set`:
//!
//! - the preferred member (the primary when the bond started: `primary=`, else
//!   the first member) carries traffic whenever its carrier is up, so it takes
//!   over again when its carrier returns, as the bond does for NIC members;
//! - otherwise the current primary stays while it is up, else the first member
//!   that is up takes over; with none up, nothing changes.
//!
//! A member's "up" is its kernel carrier when it is mirrored, else its ethdev
//! link and the bond's active set. The decisions are pure functions ([`step`],
//! [`choose_primary`]). [`CarrierMirror::apply`] shows the kernel carrier in a
//! bond's status (a member without carrier is down and not active), so that
//! failover accounting and `show ports` see what the kernel sees. In the
//! balancing modes DPDK 22.11 offers no public way to take a member out of the
//! active set: carrier changes are logged and counted, traffic is not moved by
//! the bond's own transmit policies; a balance bond with `balance = "flow"`
//! (the workers pick the member, [`crate::steer`]) leaves a member without
//! carrier out of its active set, so its flows move.
//!
//! The MTU: a bond sets its MTU on its members when it starts them, and DPDK
//! 22.11's af_packet (which reports a 1518-byte maximum frame) refuses a bond
//! MTU above 1500, so the bond sets its af_packet members' kernel interfaces
//! to MTU 1500 and the kernel then refuses larger frames (NVGRE needs 1542 for
//! a 1500-byte inner packet). [`CarrierMirror::restore_kernel_mtu`] sets the
//! interfaces back to the port's configured MTU (its frames hold 2048 bytes
//! by default, so up to [`AF_PACKET_MAX_MTU`]).
//!
//! Nothing here runs on a worker.

use super::bond::BondStatus;
use super::eal::eal_error;
use dpdk_sys as sys;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The driver whose carrier this module watches.
const AF_PACKET: &str = "net_af_packet";

/// The largest MTU set on an af_packet member's interface: its default ring
/// frame (2048 bytes) less the TPACKET2 header, Ethernet header and a VLAN tag.
pub const AF_PACKET_MAX_MTU: u16 = 2048 - 64 - 18;

/// Bonding mode in which the primary carries all traffic.
const ACTIVE_BACKUP: u8 = 1;

/// True when the kernel carrier changed since the previous poll (`None` at the
/// first, which is not a change).
pub fn step(kernel_up: bool, last_kernel: Option<bool>) -> bool {
    last_kernel.is_some_and(|l| l != kernel_up)
}

/// The member (an index into `up`) that should be an active-backup bond's
/// primary, when that is not `current`: the `preferred` member if it is up;
/// else `current` if it is up (no change); else the first member up; with none
/// up, no change.
pub fn choose_primary(preferred: Option<usize>, up: &[bool], current: Option<usize>) -> Option<usize> {
    let is_up = |i: usize| up.get(i).copied().unwrap_or(false);
    let target = match preferred {
        Some(p) if is_up(p) => p,
        _ if current.is_some_and(is_up) => return None,
        _ => up.iter().position(|&u| u)?,
    };
    (Some(target) != current).then_some(target)
}

/// The carrier of a sysfs `carrier` file's contents: `Some("1\n")` up; `Some("0\n")`,
/// anything else, or `None` (the read failed: the interface is down or gone) down.
pub fn carrier_up(contents: Option<&str>) -> bool {
    contents.is_some_and(|c| c.trim() == "1")
}

/// A kernel carrier change of an af_packet member, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierChange {
    /// The member's ethdev name.
    pub member: String,
    /// Its kernel interface.
    pub iface: String,
    /// The carrier now.
    pub up: bool,
    /// Changes counted so far on this bond, this one included.
    pub count: u64,
}

/// What one [`CarrierMirror::poll`] saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CarrierPoll {
    /// Kernel carrier changes since the previous poll.
    pub changes: Vec<CarrierChange>,
    /// The member made primary (active-backup), or why that failed.
    pub primary_set: Option<Result<String, String>>,
}

/// One af_packet member and what the last poll saw.
#[derive(Debug)]
struct Mirrored {
    port_id: u16,
    iface: String,
    last: Option<bool>,
}

#[derive(Debug, Default)]
struct State {
    members: Vec<Mirrored>,
    /// Port id of the member preferred as primary (active-backup).
    preferred: Option<u16>,
}

/// The carrier watch of one bond's af_packet members. Polled by the control
/// thread (serialised by a mutex); `changes` is read by anyone (relaxed).
#[derive(Debug, Default)]
pub struct CarrierMirror {
    state: Mutex<State>,
    changes: AtomicU64,
}

impl CarrierMirror {
    /// A watch of the af_packet members of the bond whose status is `status`
    /// (none: polling does nothing); its primary now is the preferred one.
    pub fn for_bond(status: &BondStatus) -> CarrierMirror {
        let members: Vec<Mirrored> = status
            .members
            .iter()
            .filter_map(|m| {
                let iface = af_packet_iface(m.port_id)?;
                log::info!("bond member {}: net_af_packet on {iface}; the switch watches its kernel carrier", m.name);
                Some(Mirrored { port_id: m.port_id, iface, last: None })
            })
            .collect();
        if !members.is_empty() && status.mode != ACTIVE_BACKUP {
            log::warn!(
                "bond ({}): the kernel carrier of af_packet members is logged and counted, but DPDK 22.11 cannot take one out of a balancing bond's own transmit policy; use active-backup (mode=1), or balance = \"flow\" in mode 2",
                status.mode_name()
            );
        }
        let preferred = status.members.iter().find(|m| m.primary).map(|m| m.port_id);
        CarrierMirror { state: Mutex::new(State { members, preferred }), changes: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Members watched.
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    /// True when no member is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kernel carrier changes seen so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Read every watched member's kernel carrier, count the changes, and in
    /// active-backup move the primary of bond `bond_id` (whose status, read
    /// just before, is `status`) as [`choose_primary`] says.
    pub fn poll(&self, bond_id: u16, status: &BondStatus) -> CarrierPoll {
        let mut st = self.lock();
        if st.members.is_empty() {
            return CarrierPoll::default();
        }
        let mut out = CarrierPoll::default();
        for m in st.members.iter_mut() {
            let contents = std::fs::read_to_string(format!("/sys/class/net/{}/carrier", m.iface)).ok();
            let kernel = carrier_up(contents.as_deref());
            if step(kernel, m.last) {
                let count = self.changes.fetch_add(1, Ordering::Relaxed) + 1;
                let member = status.members.iter().find(|b| b.port_id == m.port_id).map_or_else(String::new, |b| b.name.clone());
                out.changes.push(CarrierChange { member, iface: m.iface.clone(), up: kernel, count });
            }
            m.last = Some(kernel);
        }
        if status.mode != ACTIVE_BACKUP {
            return out;
        }
        let up: Vec<bool> = status.members.iter().map(|b| st.members.iter().find(|m| m.port_id == b.port_id).map_or(b.link_up && b.active, |m| m.last == Some(true))).collect();
        let preferred = st.preferred.and_then(|p| status.members.iter().position(|b| b.port_id == p));
        let current = status.members.iter().position(|b| b.primary);
        if let Some(target) = choose_primary(preferred, &up, current).and_then(|i| status.members.get(i)) {
            // SAFETY: the bonding PMD validates both port ids; it changes which
            // member the workers' bond rx/tx bursts use, as its own link
            // callback does from DPDK's interrupt thread.
            let rc = unsafe { sys::rte_eth_bond_primary_set(bond_id, target.port_id) };
            out.primary_set = Some(if rc == 0 { Ok(target.name.clone()) } else { Err(format!("{}: {}", target.name, eal_error("rte_eth_bond_primary_set", rc))) });
        }
        out
    }

    /// Set the kernel MTU of every watched member's interface to `mtu` (which
    /// the bond, started with a smaller MTU, lowered); returns what was done,
    /// for the log. Refused above [`AF_PACKET_MAX_MTU`].
    pub fn restore_kernel_mtu(&self, mtu: u16) -> Vec<String> {
        let st = self.lock();
        st.members
            .iter()
            .map(|m| {
                if mtu > AF_PACKET_MAX_MTU {
                    return format!("{}: MTU {mtu} left alone (an af_packet frame holds at most MTU {AF_PACKET_MAX_MTU})", m.iface);
                }
                match std::fs::write(format!("/sys/class/net/{}/mtu", m.iface), mtu.to_string()) {
                    Ok(()) => format!("{}: kernel MTU set to {mtu}", m.iface),
                    Err(e) => format!("{}: cannot set its kernel MTU to {mtu}: {e}", m.iface),
                }
            })
            .collect()
    }

    /// Show the kernel carrier in `status`: a watched member's link is its
    /// carrier at the last poll, and one without carrier is not active.
    pub fn apply(&self, status: &mut BondStatus) {
        let st = self.lock();
        for b in &mut status.members {
            if let Some(m) = st.members.iter().find(|m| m.port_id == b.port_id) {
                if let Some(up) = m.last {
                    b.link_up = up;
                    b.active &= up;
                }
            }
        }
    }
}

/// The kernel interface of ethdev `id` when its driver is `net_af_packet`
/// (which reports the interface's index in its device info), else `None`.
fn af_packet_iface(id: u16) -> Option<String> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: valid out struct; the function validates the id.
    let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
    if rc != 0 || info.driver_name.is_null() {
        return None;
    }
    // SAFETY: driver_name is a static C string owned by the driver.
    let driver = unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy();
    if driver != AF_PACKET || info.if_index == 0 {
        return None;
    }
    iface_by_index(info.if_index)
}

/// The name of the interface with index `index` in this network namespace.
fn iface_by_index(index: u32) -> Option<String> {
    std::fs::read_dir("/sys/class/net").ok()?.flatten().find_map(|e| {
        let i = std::fs::read_to_string(e.path().join("ifindex")).ok()?;
        (i.trim().parse::<u32>().ok()? == index).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_a_different_carrier_than_at_the_previous_poll() {
        assert!(!step(false, None), "the first reading is no change");
        assert!(!step(true, None));
        assert!(!step(true, Some(true)));
        assert!(step(false, Some(true)));
        assert!(step(true, Some(false)));
    }

    #[test]
    fn the_preferred_member_carries_traffic_whenever_it_is_up() {
        // Steady: the preferred member is primary and up.
        assert_eq!(choose_primary(Some(0), &[true, true], Some(0)), None);
        // Its carrier drops: the backup takes over.
        assert_eq!(choose_primary(Some(0), &[false, true], Some(0)), Some(1));
        // It returns: it takes over again.
        assert_eq!(choose_primary(Some(0), &[true, true], Some(1)), Some(0));
        // Nothing up: no change.
        assert_eq!(choose_primary(Some(0), &[false, false], Some(0)), None);
        // The current primary, not preferred, stays while the preferred is down.
        assert_eq!(choose_primary(Some(0), &[false, true, true], Some(2)), None);
        // The current one fails too: the first member up.
        assert_eq!(choose_primary(Some(0), &[false, true, false], Some(2)), Some(1));
        // No preferred member known, none current: the first up.
        assert_eq!(choose_primary(None, &[false, true], None), Some(1));
        // An index beyond the members is down.
        assert_eq!(choose_primary(Some(5), &[true], Some(0)), None);
    }

    #[test]
    fn only_a_carrier_of_one_is_up() {
        assert!(carrier_up(Some("1\n")));
        assert!(carrier_up(Some("1")));
        assert!(!carrier_up(Some("0\n")));
        assert!(!carrier_up(Some("")));
        assert!(!carrier_up(Some("garbage")));
        // Reading `carrier` of an interface set down fails (EINVAL); a removed one has no file.
        assert!(!carrier_up(None));
    }
}
