//! What the control threads share with the rest of the daemon: the policy
//! service, counters, the port rows the main loop refreshes, the capture
//! control, and the queue of port changes for the main thread.

use crate::service::{PolicyService, PortChangeError, PortChanged};
use hnv_datapath::ext::live_capture::CaptureControl;
use hnv_datapath::DatapathStats;
use hnv_policy::api::Request;
use pmd::WorkerStats;
use std::sync::{Arc, Mutex};

/// Per-port facts the main loop refreshes for `show ports`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PortRow {
    /// Port name.
    pub name: String,
    /// Link up.
    pub link_up: bool,
    /// Receive rate over the last interval.
    pub rx_pps: f64,
    /// Transmit rate over the last interval.
    pub tx_pps: f64,
    /// Packets received (DPDK).
    pub rx_packets: u64,
    /// Packets sent (DPDK).
    pub tx_packets: u64,
    /// Packets the NIC missed.
    pub rx_missed: u64,
    /// DPDK driver.
    pub driver: String,
    /// Rx queues.
    pub rx_queues: u16,
    /// Tx queues.
    pub tx_queues: u16,
    /// A bond's mode, members, active member and failovers (bonds only).
    #[serde(flatten)]
    pub bond: Option<crate::bond::BondRow>,
}

/// A port change for the main thread, and where to send its outcome.
#[derive(Debug)]
pub struct PortJob {
    /// `add_port` or `remove_port`.
    pub req: Request,
    /// Receives the new generation and the workers' pause, or why the change was refused.
    pub reply: std::sync::mpsc::Sender<Result<PortChanged, PortChangeError>>,
}

/// What the control threads can see and reach.
#[derive(Debug, Clone)]
pub struct CtlState {
    /// The policy service: every change goes through it.
    pub service: Arc<PolicyService>,
    /// Each worker's datapath counters.
    pub stats: Vec<Arc<DatapathStats>>,
    /// Port rows, refreshed by the main loop.
    pub ports: Arc<Mutex<Vec<PortRow>>>,
    /// The etcd backend's status when etcd manages the tenant policy.
    pub etcd: Option<crate::etcd::status::StatusHandle>,
    /// Each worker's I/O and cycle counters.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Starts and stops captures.
    pub captures: Arc<CaptureControl>,
    /// Held by port changes and capture starts, so that a capture never
    /// resolves port names against a port list about to change.
    pub ports_or_capture: Arc<Mutex<()>>,
    /// Where port changes go (the main thread); None: ports cannot change.
    pub port_jobs: Option<std::sync::mpsc::Sender<PortJob>>,
}
