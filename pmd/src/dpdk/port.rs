//! Ethdev ports: open by devargs or PCI address, configure, start, close.
//!
//! A port is named like DPDK names it: a vdev's devargs (`net_pcap0,rx_pcap=…`,
//! `net_tap0,iface=t0`, `net_vhost0,iface=/run/vm.sock`), a PCI address
//! (`0000:03:00.0`), or the name of an ethdev that already exists (for example
//! a [`super::RingPort`]). Vdevs are hot-plugged after EAL init, so a bad
//! devargs string is reported against its port. Ports hold their mempool.

use super::bond::{bond_devargs, bond_status, flow_steer, is_bond, remove_members, unregister_steer, BondStatus, BondWatch, Failover, Probed};
use super::carrier::CarrierPoll;
use super::eal::{eal_error, Eal, EalError};
use super::mempool::Mempool;
use crate::steer::FlowSteer;
use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::Arc;

/// How to set up one port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// DPDK devargs or PCI address.
    pub devargs: String,
    /// Rx queues (RSS spreads flows over them when more than one).
    pub rx_queues: u16,
    /// Tx queues (one per worker).
    pub tx_queues: u16,
    /// Rx descriptors per queue.
    pub rx_desc: u16,
    /// Tx descriptors per queue.
    pub tx_desc: u16,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
    /// Enable promiscuous mode.
    pub promiscuous: bool,
    /// Members of a bond (`net_bonding…` devargs): devargs or PCI addresses of
    /// devices to probe before the bond and name as its members (see [`super::bond`]).
    pub members: Vec<String>,
    /// Transmit on a balance-mode bond (`mode=2`) by the encapsulation's flow
    /// entropy (NVGRE key, VXLAN source port; see [`crate::steer`]) instead of
    /// the bond's own hash: the worker picks the member itself. Only for a bond in mode 2.
    pub balance_flow: bool,
}

impl PortConfig {
    /// One rx and one tx queue, 1024 descriptors, promiscuous.
    pub fn new(devargs: impl Into<String>) -> Self {
        PortConfig { devargs: devargs.into(), rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, mtu: None, promiscuous: true, members: Vec::new(), balance_flow: false }
    }
}

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// DPDK refused the device.
    #[error("port {devargs:?}: {cause}")]
    Dpdk {
        /// The port's devargs.
        devargs: String,
        /// DPDK's reason.
        cause: EalError,
    },
    /// The device cannot give what the configuration asks.
    #[error("port {devargs:?}: {message}")]
    Unsupported {
        /// The port's devargs.
        devargs: String,
        /// What is missing.
        message: String,
    },
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s.
    pub speed_mbps: u32,
}

/// Basic ethdev counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped for lack of rx descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured, started ethdev port.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    devargs: String,
    hotplugged: bool,
    rx_queues: u16,
    tx_queues: u16,
    driver: String,
    /// Member devices probed for this bond, removed after it closes.
    members: Vec<Probed>,
    /// Failover accounting when this port is a bond.
    bond: Option<Box<BondWatch>>,
    /// The active members a flow-balanced bond's workers transmit on (registered
    /// by the bond's port id for [`super::DpdkIo`]); refreshed by [`Port::watch_bond`].
    steer: Option<Arc<FlowSteer>>,
    _pool: Arc<Mempool>,
}

pub(crate) fn is_pci(devargs: &str) -> bool {
    let head = devargs.split(',').next().unwrap_or("");
    let parts: Vec<&str> = head.split(':').collect();
    (parts.len() == 2 || parts.len() == 3) && head.contains('.') && head.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

/// Virtio devices, whose multiple queues are chosen by the other end of the virtqueues.
fn is_virtio_pair(driver: &str) -> bool {
    driver == "net_vhost" || driver == "net_virtio_user" || driver == "net_virtio"
}

pub(crate) fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: c is a valid C string and id a valid out pointer.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

impl Port {
    /// Probe (if needed), configure and start a port receiving into `pool`.
    ///
    /// # Errors
    /// [`PortError`] naming the devargs and DPDK's reason.
    pub fn open(_eal: &Eal, cfg: &PortConfig, pool: Arc<Mempool>) -> Result<Port, PortError> {
        let devargs = cfg.devargs.clone();
        let dpdk = |cause: EalError| PortError::Dpdk { devargs: devargs.clone(), cause };
        let bond = is_bond(&cfg.devargs);
        if !cfg.members.is_empty() && !bond {
            return Err(PortError::Unsupported { devargs, message: "only a bond (net_bonding…) has members".into() });
        }
        // A bond's members exist before it: probe those listed, name them all with slave=.
        let (full, members) = if bond && port_by_name(cfg.devargs.split(',').next().unwrap_or("")).is_none() {
            bond_devargs(&cfg.devargs, &cfg.members).map_err(|message| PortError::Unsupported { devargs: devargs.clone(), message })?
        } else {
            (cfg.devargs.clone(), Vec::new())
        };
        let (name, args) = match full.split_once(',') {
            Some((n, a)) => (n.to_string(), a.to_string()),
            None => (full.clone(), String::new()),
        };
        let mut hotplugged = false;
        let id = if let Some(id) = port_by_name(&name) {
            id
        } else {
            let cdev = CString::new(cfg.devargs.as_str()).map_err(|_| dpdk(eal_error("devargs", -22)))?;
            let rc = if is_pci(&cfg.devargs) {
                // SAFETY: cdev is a valid C string; probing is allowed after EAL init.
                unsafe { sys::rte_dev_probe(cdev.as_ptr()) }
            } else {
                let cname = CString::new(name.as_str()).map_err(|_| dpdk(eal_error("devargs", -22)))?;
                let cargs = CString::new(args.as_str()).map_err(|_| dpdk(eal_error("devargs", -22)))?;
                // SAFETY: both are valid C strings that DPDK copies.
                unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) }
            };
            if rc != 0 {
                remove_members(&members);
                return Err(dpdk(eal_error("DPDK rejected the device (unknown driver or bad device arguments)", rc)));
            }
            hotplugged = !is_pci(&cfg.devargs);
            port_by_name(&name).ok_or_else(|| PortError::Unsupported { devargs: devargs.clone(), message: format!("device probed but no ethdev named {name:?} appeared") })?
        };
        let bond = bond_status(id).map(|_| Box::default());
        // From here a failure drops `port`, which closes it and removes its members.
        let mut port = Port { id, name, devargs: devargs.clone(), hotplugged, rx_queues: cfg.rx_queues, tx_queues: cfg.tx_queues, driver: String::new(), members, bond, steer: None, _pool: pool };
        port.configure(cfg).map_err(|e| match e {
            PortError::Dpdk { cause, .. } => PortError::Dpdk { devargs: devargs.clone(), cause },
            other => other,
        })?;
        // A bond adds the members named in its devargs when it is configured: watch them now.
        if port.bond.is_some() {
            port.bond = bond_status(id).map(|s| Box::new(BondWatch::new(&s)));
            // The bond lowered its af_packet members' kernel MTU to its own when it started them.
            if let (Some(mtu), Some(w)) = (cfg.mtu, &port.bond) {
                let mut now = 0u16;
                // SAFETY: valid port, valid out pointer.
                let rc = unsafe { sys::rte_eth_dev_get_mtu(id, &mut now) };
                if rc == 0 && now != mtu {
                    for line in w.restore_kernel_mtu(mtu) {
                        log::info!("port {devargs}: bond MTU {now}, af_packet member {line}");
                    }
                }
            }
        }
        if cfg.balance_flow {
            port.steer = Some(flow_steer(id).map_err(|message| PortError::Unsupported { devargs: devargs.clone(), message })?);
        }
        Ok(port)
    }

    /// True when the workers transmit on this bond by flow entropy (`balance = "flow"`).
    pub fn flow_balanced(&self) -> bool {
        self.steer.is_some()
    }

    fn configure(&mut self, cfg: &PortConfig) -> Result<(), PortError> {
        let unsupported = |message: String| PortError::Unsupported { devargs: cfg.devargs.clone(), message };
        let dpdk = |ctx: &str, rc: i32| PortError::Dpdk { devargs: cfg.devargs.clone(), cause: eal_error(ctx, rc) };
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: id is a valid port; info is a valid out struct.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        if rc != 0 {
            return Err(dpdk("rte_eth_dev_info_get", rc));
        }
        if !info.driver_name.is_null() {
            // SAFETY: driver_name is a static C string owned by the driver.
            self.driver = unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned();
        }
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(unsupported(format!("{} rx queues asked, the device supports {}", cfg.rx_queues, info.max_rx_queues)));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(unsupported(format!("{} tx queues asked (one per worker), the device supports {}: use fewer workers", cfg.tx_queues, info.max_tx_queues)));
        }
        let mut conf = sys::rte_eth_conf::default();
        if cfg.rx_queues > 1 {
            // IPv4, IPv6 and their TCP/UDP variants (RTE_ETH_RSS_IP | _TCP | _UDP bits).
            const RSS_WANTED: u64 = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 13);
            let hf = RSS_WANTED & info.flow_type_rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
            } else if is_virtio_pair(&self.driver) {
                // Virtio queue pairs: the other side picks the queue (a vhost-user
                // backend without VIRTIO_NET_F_RSS offers no RSS), so rx queue i
                // carries what the peer sends on its queue i.
                log::info!("port {}: {} rx queues without RSS: the {} peer spreads packets by the queue it sends on", cfg.devargs, cfg.rx_queues, self.driver);
            } else {
                return Err(unsupported(format!("{} rx queues need RSS, which the {} driver does not offer", cfg.rx_queues, self.driver)));
            }
        }
        // SAFETY: valid port id and configuration struct.
        let rc = unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if rc != 0 {
            return Err(dpdk("rte_eth_dev_configure", rc));
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: valid configured port.
            let rc = unsafe { sys::rte_eth_dev_set_mtu(self.id, mtu) };
            if rc != 0 {
                log::warn!("port {}: cannot set MTU {mtu}: {}", cfg.devargs, eal_error("set_mtu", rc).message);
            }
        }
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port and out pointers.
        unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        let socket = u32::try_from(socket).unwrap_or(0);
        for q in 0..cfg.rx_queues {
            // SAFETY: valid port and queue; the pool outlives the port (held in self).
            let rc = unsafe { sys::rte_eth_rx_queue_setup(self.id, q, nb_rx, socket, std::ptr::null(), self._pool.as_ptr()) };
            if rc != 0 {
                return Err(dpdk(&format!("rx queue {q} setup (pool {} has {} free mbufs)", self._pool.name(), self._pool.available()), rc));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: valid port and queue.
            let rc = unsafe { sys::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(dpdk(&format!("tx queue {q} setup"), rc));
            }
        }
        // SAFETY: configured port.
        let rc = unsafe { sys::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(dpdk("rte_eth_dev_start", rc));
        }
        if cfg.promiscuous {
            // SAFETY: started port; failure (unsupported) is harmless.
            unsafe { sys::rte_eth_promiscuous_enable(self.id) };
        }
        Ok(())
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.id
    }
    /// The ethdev name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The devargs it was opened with.
    pub fn devargs(&self) -> &str {
        &self.devargs
    }
    /// The PMD's driver name.
    pub fn driver(&self) -> &str {
        &self.driver
    }
    /// Configured rx queues.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }
    /// Configured tx queues.
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid port, valid out struct.
        unsafe { sys::rte_eth_macaddr_get(self.id, &mut a) };
        a.addr_bytes
    }

    /// Link status, without waiting.
    pub fn link(&self) -> LinkStatus {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid port, valid out struct.
        unsafe { sys::rte_eth_link_get_nowait(self.id, &mut l) };
        LinkStatus { up: l.link_status() != 0, speed_mbps: l.link_speed }
    }

    /// Basic counters.
    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, valid out struct.
        unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats { ipackets: s.ipackets, opackets: s.opackets, ibytes: s.ibytes, obytes: s.obytes, imissed: s.imissed, ierrors: s.ierrors, oerrors: s.oerrors, rx_nombuf: s.rx_nombuf }
    }

    /// Members, links and the transmitting member when this port is a bond.
    /// (An af_packet member's link is its kernel carrier at the last [`Port::watch_bond`].)
    pub fn bond_status(&self) -> Option<BondStatus> {
        let w = self.bond.as_ref()?;
        let mut s = bond_status(self.id)?;
        w.apply_carrier(&mut s);
        Some(s)
    }

    /// Failovers counted so far by [`Port::watch_bond`] (0 for a port that is not a bond).
    pub fn failovers(&self) -> u64 {
        self.bond.as_ref().map_or(0, |w| w.failovers())
    }

    /// True when this port is a bond.
    pub fn is_bond(&self) -> bool {
        self.bond.is_some()
    }

    /// Kernel carrier changes of the bond's af_packet members seen so far (0 for a port that is not a bond).
    pub fn carrier_changes(&self) -> u64 {
        self.bond.as_ref().map_or(0, |w| w.carrier_changes())
    }

    /// Watch the kernel carrier of a bond's af_packet members (moving the
    /// primary of an active-backup bond off a member without carrier), then
    /// read the bond's status and count a failover if the transmitting member
    /// changed since the last call (control thread; see
    /// [`BondWatch::watch_carrier`] and [`BondWatch::check`]).
    pub fn watch_bond(&self) -> Option<(BondStatus, Option<Failover>, CarrierPoll)> {
        let w = self.bond.as_ref()?;
        let before = bond_status(self.id)?;
        let carrier = w.watch_carrier(self.id, &before);
        let mut s = if carrier.primary_set.is_some() { bond_status(self.id)? } else { before };
        w.apply_carrier(&mut s);
        if let Some(steer) = &self.steer {
            // A member carries flows while the bond has it active and its link (for
            // af_packet: its kernel carrier) is up.
            let active: Vec<u16> = s.members.iter().filter(|m| m.active && m.link_up).map(|m| m.port_id).collect();
            steer.set_active(&active);
        }
        let f = w.check(&s);
        Some((s, f, carrier))
    }

    /// Extended counters, by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: a NULL array asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        let Ok(n) = usize::try_from(n) else { return Vec::new() };
        let mut names = vec![sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut vals = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays hold n entries.
        let got_names = unsafe { sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_vals = unsafe { sys::rte_eth_xstats_get(self.id, vals.as_mut_ptr(), n as u32) };
        if got_names < 0 || got_vals < 0 {
            return Vec::new();
        }
        let k = n.min(got_names as usize).min(got_vals as usize);
        names[..k]
            .iter()
            .zip(&vals[..k])
            .map(|(nm, v)| {
                // SAFETY: DPDK NUL-terminates xstat names within 64 bytes.
                let s = unsafe { CStr::from_ptr(nm.name.as_ptr()) }.to_string_lossy().into_owned();
                (s, v.value)
            })
            .collect()
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if self.steer.is_some() {
            unregister_steer(self.id);
        }
        // SAFETY: we own the port; stop then close releases its queues (and, for
        // net_pcap, flushes the tx file). Errors here cannot be acted upon.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
        if self.hotplugged {
            if let Ok(c) = CString::new(self.name.as_str()) {
                // SAFETY: valid C string naming the vdev we hot-plugged.
                unsafe { sys::rte_vdev_uninit(c.as_ptr()) };
            }
        }
        remove_members(&self.members);
    }
}

#[cfg(test)]
mod tests {
    use super::is_pci;

    #[test]
    fn pci_addresses_are_told_from_vdevs() {
        assert!(is_pci("0000:03:00.0"));
        assert!(is_pci("03:00.1"));
        assert!(!is_pci("net_pcap0,rx_pcap=a.pcap"));
        assert!(!is_pci("net_null0"));
    }
}
