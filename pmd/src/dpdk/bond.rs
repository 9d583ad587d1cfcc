//! Bonded ports: DPDK's own bonding PMD (`net_bonding`, librte_net_bond).
//!
//! A bond is opened like any port, by devargs (`net_bonding0,mode=1,slave=A,slave=B`);
//! its members must exist as ethdevs first. [`bond_devargs`] prepares that: it
//! probes member devices given separately (a vdev with its own arguments, a PCI
//! address), names them in the bond's devargs, and accepts DPDK 23.11's
//! `member=` spelling for 22.11's `slave=`. The bond configures and starts its
//! members itself; the switch never opens them as ports.
//!
//! [`BondStatus`] reads the members, their links, which are active and which one
//! transmits (active-backup: the current primary) through the bonding PMD's
//! query API. [`BondWatch`] compares successive reads on the control thread and
//! counts failovers; it also watches the kernel carrier of `net_af_packet`
//! members ([`super::carrier`]), which that PMD does not report itself. Nothing here runs on a worker.

use super::carrier::{CarrierMirror, CarrierPoll};
use super::eal::{eal_error, EalError};
use super::port::port_by_name;
use crate::steer::{FlowSteer, MAX_STEER_MEMBERS};
use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most members a bond reports (DPDK's RTE_MAX_ETHPORTS bounds it; 8 is plenty for a NIC team).
const MAX_MEMBERS: usize = 16;

/// One member of a bond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondMember {
    /// Ethdev name.
    pub name: String,
    /// Ethdev port id.
    pub port_id: u16,
    /// Link up.
    pub link_up: bool,
    /// In the bond's active (distributing) set.
    pub active: bool,
    /// The member that transmits in active-backup mode (the bond's current primary).
    pub primary: bool,
    /// Packets it received (its own ethdev counter).
    pub rx_packets: u64,
    /// Packets it sent.
    pub tx_packets: u64,
}

/// What a bond is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondStatus {
    /// Bonding mode (0 round-robin, 1 active-backup, 2 balance, 3 broadcast, 4 802.3ad, 5 tlb, 6 alb).
    pub mode: u8,
    /// Transmit hash policy of modes 2 and 4 (`l2`, `l23`, `l34`), else `None`.
    pub xmit_policy: Option<&'static str>,
    /// Members, in the order they were added.
    pub members: Vec<BondMember>,
}

impl BondStatus {
    /// The mode's name, as the Linux bonding driver calls it.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            0 => "balance-rr",
            1 => "active-backup",
            2 => "balance-xor",
            3 => "broadcast",
            4 => "802.3ad",
            5 => "balance-tlb",
            6 => "balance-alb",
            _ => "unknown",
        }
    }

    /// The members that carry traffic now: in active-backup the primary, else every active member.
    pub fn transmitting(&self) -> Vec<&BondMember> {
        if self.mode == 1 {
            self.members.iter().filter(|m| m.primary && m.active).collect()
        } else {
            self.members.iter().filter(|m| m.active).collect()
        }
    }
}

fn ethdev_name(id: u16) -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: buf holds RTE_ETH_NAME_MAX_LEN (64) bytes, which DPDK NUL-terminates.
    let rc = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if rc != 0 {
        return format!("port{id}");
    }
    // SAFETY: NUL-terminated above.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

fn link_up(id: u16) -> bool {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: valid out struct; an invalid id leaves it zeroed (down).
    unsafe { sys::rte_eth_link_get_nowait(id, &mut l) };
    l.link_status() != 0
}

/// The status of bond `port_id`, or `None` when it is not a bond.
pub fn bond_status(port_id: u16) -> Option<BondStatus> {
    // SAFETY: the query functions validate the id and return a negative value for a non-bond.
    let mode = unsafe { sys::rte_eth_bond_mode_get(port_id) };
    let mode = u8::try_from(mode).ok()?;
    let mut all = [0u16; MAX_MEMBERS];
    let mut act = [0u16; MAX_MEMBERS];
    // SAFETY: each array holds MAX_MEMBERS entries, the length passed.
    let n_all = unsafe { sys::rte_eth_bond_slaves_get(port_id, all.as_mut_ptr(), MAX_MEMBERS as u16) };
    // SAFETY: as above.
    let n_act = unsafe { sys::rte_eth_bond_active_slaves_get(port_id, act.as_mut_ptr(), MAX_MEMBERS as u16) };
    // SAFETY: valid bond id (mode_get succeeded).
    let primary = unsafe { sys::rte_eth_bond_primary_get(port_id) };
    let all = &all[..usize::try_from(n_all).unwrap_or(0).min(MAX_MEMBERS)];
    let act = &act[..usize::try_from(n_act).unwrap_or(0).min(MAX_MEMBERS)];
    let xmit_policy = if mode == 2 || mode == 4 {
        // SAFETY: valid bond id.
        match unsafe { sys::rte_eth_bond_xmit_policy_get(port_id) } {
            0 => Some("l2"),
            1 => Some("l23"),
            2 => Some("l34"),
            _ => None,
        }
    } else {
        None
    };
    let members = all
        .iter()
        .map(|&id| {
            let mut st = sys::rte_eth_stats::default();
            // SAFETY: valid out struct; a failure leaves it zeroed.
            unsafe { sys::rte_eth_stats_get(id, &mut st) };
            BondMember { name: ethdev_name(id), port_id: id, link_up: link_up(id), active: act.contains(&id), primary: i32::from(id) == primary, rx_packets: st.ipackets, tx_packets: st.opackets }
        })
        .collect();
    Some(BondStatus { mode, xmit_policy, members })
}

/// Set a port's link up or down (`rte_eth_dev_set_link_up/down`): how a test, or
/// an operator draining a member, takes one member of a bond out.
///
/// # Errors
/// DPDK's reason (for example, a driver that cannot change its link).
pub fn set_link(port_id: u16, up: bool) -> Result<(), EalError> {
    // SAFETY: both functions validate the port id.
    let rc = unsafe {
        if up {
            sys::rte_eth_dev_set_link_up(port_id)
        } else {
            sys::rte_eth_dev_set_link_down(port_id)
        }
    };
    if rc != 0 {
        return Err(eal_error(if up { "rte_eth_dev_set_link_up" } else { "rte_eth_dev_set_link_down" }, rc));
    }
    Ok(())
}

/// Take a member's link down as a failing NIC would: `rte_eth_dev_set_link_down`,
/// or, for a driver without link control (`net_null`), stopping the device,
/// which drops its link. The bond notices within its link polling interval.
///
/// # Errors
/// DPDK's reason.
pub fn member_down(port_id: u16) -> Result<(), EalError> {
    match set_link(port_id, false) {
        Err(e) if e.errno == 95 => {
            // SAFETY: validates the id; the bond keeps calling the stopped member's
            // burst functions until it notices, which net_null tolerates.
            let rc = unsafe { sys::rte_eth_dev_stop(port_id) };
            if rc != 0 {
                return Err(eal_error("rte_eth_dev_stop", rc));
            }
            Ok(())
        }
        other => other,
    }
}

/// True when `devargs` names a bonding vdev (`net_bonding…` or its alias `eth_bond…`).
pub fn is_bond(devargs: &str) -> bool {
    let head = devargs.split(',').next().unwrap_or("");
    head.starts_with("net_bonding") || head.starts_with("eth_bond")
}

/// A member device probed for a bond, to remove after the bond is closed.
#[derive(Debug)]
pub(crate) struct Probed {
    /// Ethdev name (a vdev's name, or a PCI address).
    pub name: String,
    /// Hot-plugged vdev (removed with `rte_vdev_uninit`), as opposed to a PCI device.
    pub vdev: bool,
}

/// Probe every member of `members` that does not exist yet and return the
/// bond's devargs with every member named (`slave=`, DPDK 22.11's key; a
/// `member=` in `devargs` is rewritten to it), plus the members probed here.
/// On error, the members probed so far are removed again.
pub(crate) fn bond_devargs(devargs: &str, members: &[String]) -> Result<(String, Vec<Probed>), String> {
    let mut parts: Vec<String> = devargs.split(',').map(|p| p.strip_prefix("member=").map_or_else(|| p.to_string(), |m| format!("slave={m}"))).collect();
    let mut probed = Vec::new();
    for m in members {
        let name = m.split(',').next().unwrap_or_default().to_string();
        if port_by_name(&name).is_none() {
            match probe(m) {
                Ok(vdev) => probed.push(Probed { name: name.clone(), vdev }),
                Err(e) => {
                    remove_members(&probed);
                    return Err(format!("bond member {m:?}: {e}"));
                }
            }
        }
        if !parts.iter().any(|p| p.strip_prefix("slave=") == Some(name.as_str())) {
            parts.push(format!("slave={name}"));
        }
    }
    if !parts.iter().any(|p| p.starts_with("slave=")) {
        remove_members(&probed);
        return Err("a bond needs members: name them with slave=NAME (member=NAME) in its devargs, or list them in the port's members".into());
    }
    Ok((parts.join(","), probed))
}

/// Probe one device by devargs; true when it is a vdev.
fn probe(devargs: &str) -> Result<bool, EalError> {
    let (name, args) = devargs.split_once(',').unwrap_or((devargs, ""));
    let pci = super::port::is_pci(devargs);
    let c = |s: &str| CString::new(s).map_err(|_| eal_error("devargs", -22));
    let rc = if pci {
        let cdev = c(devargs)?;
        // SAFETY: valid C string; probing is allowed after EAL init.
        unsafe { sys::rte_dev_probe(cdev.as_ptr()) }
    } else {
        let (cname, cargs) = (c(name)?, c(args)?);
        // SAFETY: valid C strings that DPDK copies.
        unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) }
    };
    if rc != 0 {
        return Err(eal_error("DPDK rejected the device (unknown driver or bad device arguments)", rc));
    }
    Ok(!pci)
}

/// Close and remove members probed by [`bond_devargs`] (after the bond that held them is closed).
pub(crate) fn remove_members(probed: &[Probed]) {
    for p in probed {
        if let Some(id) = port_by_name(&p.name) {
            // SAFETY: the bond is gone; we probed this device and nothing else owns it.
            unsafe {
                sys::rte_eth_dev_stop(id);
                sys::rte_eth_dev_close(id);
            }
        }
        if p.vdev {
            if let Ok(c) = CString::new(p.name.as_str()) {
                // SAFETY: valid C string naming the vdev we hot-plugged.
                unsafe { sys::rte_vdev_uninit(c.as_ptr()) };
            }
        }
    }
}

/// Flow steering of the bonds opened with `balance_flow`, by bond port id:
/// where [`super::DpdkIo`] finds them when it maps its ports (control side, at
/// worker start and on a port change; never per packet).
static STEERS: Mutex<Vec<(u16, Arc<FlowSteer>)>> = Mutex::new(Vec::new());

fn steers() -> std::sync::MutexGuard<'static, Vec<(u16, Arc<FlowSteer>)>> {
    STEERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Set up flow steering for bond `bond_id`: its members, those active now, registered for the workers.
///
/// # Errors
/// The port is not a bond, or not in balance mode (`mode=2`), or has more than [`MAX_STEER_MEMBERS`] members.
pub(crate) fn flow_steer(bond_id: u16) -> Result<Arc<FlowSteer>, String> {
    let s = bond_status(bond_id).ok_or("balance = \"flow\" needs a bond (net_bonding…)")?;
    if s.mode != 2 {
        return Err(format!("balance = \"flow\" needs a balance-mode bond (mode=2), not mode={} ({})", s.mode, s.mode_name()));
    }
    if s.members.len() > MAX_STEER_MEMBERS {
        return Err(format!("balance = \"flow\" spreads over at most {MAX_STEER_MEMBERS} members, the bond has {}", s.members.len()));
    }
    let ids: Vec<u16> = s.members.iter().map(|m| m.port_id).collect();
    let steer = Arc::new(FlowSteer::new(&ids));
    let active: Vec<u16> = s.members.iter().filter(|m| m.active && m.link_up).map(|m| m.port_id).collect();
    steer.set_active(&active);
    let mut all = steers();
    all.retain(|(id, _)| *id != bond_id);
    all.push((bond_id, steer.clone()));
    Ok(steer)
}

/// Forget bond `bond_id`'s flow steering (it is being closed).
pub(crate) fn unregister_steer(bond_id: u16) {
    steers().retain(|(id, _)| *id != bond_id);
}

/// The flow steering of ethdev `port_id`, when it is a bond opened with `balance_flow`.
pub fn steer_of(port_id: u16) -> Option<Arc<FlowSteer>> {
    steers().iter().find(|(id, _)| *id == port_id).map(|(_, s)| s.clone())
}

/// A failover seen by [`BondWatch::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// Members that carried traffic before.
    pub from: Vec<String>,
    /// Members that carry it now.
    pub to: Vec<String>,
    /// Failovers counted so far, this one included.
    pub count: u64,
}

/// Failover accounting for one bond. Written by the control thread that calls
/// [`BondWatch::check`] (serialised by a mutex); `failovers` is read by anyone (relaxed).
#[derive(Debug, Default)]
pub struct BondWatch {
    /// Port ids of the members that carried traffic at the last check.
    last: Mutex<Option<Vec<u16>>>,
    /// Failovers: in active-backup a change of the transmitting member (none
    /// transmitting before does not count); in the other modes a member leaving
    /// the active set.
    failovers: AtomicU64,
    /// The kernel carrier of the bond's `net_af_packet` members.
    carrier: CarrierMirror,
}

impl BondWatch {
    /// A watch of the bond whose status is `status` (its af_packet members' carrier watched).
    pub fn new(status: &BondStatus) -> BondWatch {
        BondWatch { last: Mutex::new(None), failovers: AtomicU64::new(0), carrier: CarrierMirror::for_bond(status) }
    }

    /// Failovers counted so far.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Kernel carrier changes of af_packet members seen so far.
    pub fn carrier_changes(&self) -> u64 {
        self.carrier.changes()
    }

    /// Read the af_packet members' kernel carrier and, in active-backup, move
    /// the primary of bond `bond_id` (status `status`) accordingly (see
    /// [`CarrierMirror::poll`]); then read the status again to check.
    pub fn watch_carrier(&self, bond_id: u16, status: &BondStatus) -> CarrierPoll {
        self.carrier.poll(bond_id, status)
    }

    /// Set the af_packet members' kernel MTU to `mtu` (see [`CarrierMirror::restore_kernel_mtu`]).
    pub fn restore_kernel_mtu(&self, mtu: u16) -> Vec<String> {
        self.carrier.restore_kernel_mtu(mtu)
    }

    /// Show the af_packet members' kernel carrier in `status` (see [`CarrierMirror::apply`]).
    pub fn apply_carrier(&self, status: &mut BondStatus) {
        self.carrier.apply(status);
    }

    /// Compare `status` with the last check; count and return a failover.
    pub fn check(&self, status: &BondStatus) -> Option<Failover> {
        let now: Vec<u16> = status.transmitting().iter().map(|m| m.port_id).collect();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = last.replace(now.clone())?;
        // Members coming up where none carried traffic (at start) is no failover.
        let failed = if status.mode == 1 { !before.is_empty() && before != now } else { before.iter().any(|id| !now.contains(id)) };
        if !failed {
            return None;
        }
        let count = self.failovers.fetch_add(1, Ordering::Relaxed) + 1;
        let name = |id: &u16| ethdev_name(*id);
        Some(Failover { from: before.iter().map(name).collect(), to: now.iter().map(name).collect(), count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonds_are_told_from_other_devices() {
        assert!(is_bond("net_bonding0,mode=1,slave=net_ring_a"));
        assert!(is_bond("eth_bond1"));
        assert!(!is_bond("net_ring_a"));
        assert!(!is_bond("0000:03:00.0"));
    }

    fn status(mode: u8, members: &[(u16, bool, bool)]) -> BondStatus {
        BondStatus {
            mode,
            xmit_policy: None,
            members: members.iter().map(|&(port_id, active, primary)| BondMember { name: String::new(), port_id, link_up: active, active, primary, rx_packets: 0, tx_packets: 0 }).collect(),
        }
    }

    #[test]
    fn active_backup_counts_a_change_of_the_transmitting_member() {
        let w = BondWatch::default();
        assert_eq!(w.check(&status(1, &[(1, false, true), (2, false, false)])), None);
        assert_eq!(w.check(&status(1, &[(1, true, true), (2, true, false)])), None, "members coming up at start");
        assert_eq!(w.check(&status(1, &[(1, true, true), (2, true, false)])), None);
        assert_eq!(w.check(&status(1, &[(1, false, false), (2, true, true)])).map(|f| f.count), Some(1));
        // The old primary coming back without taking over is no failover.
        assert_eq!(w.check(&status(1, &[(1, true, false), (2, true, true)])), None);
        assert_eq!(w.failovers(), 1);
    }

    #[test]
    fn balance_counts_a_member_leaving_not_one_joining() {
        let w = BondWatch::default();
        assert_eq!(w.check(&status(2, &[(1, true, true), (2, true, false)])), None);
        assert!(w.check(&status(2, &[(1, false, true), (2, true, false)])).is_some());
        assert_eq!(w.check(&status(2, &[(1, true, true), (2, true, false)])), None);
        assert_eq!(w.failovers(), 1);
    }
}
