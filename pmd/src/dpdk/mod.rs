//! The safe layer over DPDK: EAL, mempools, mbufs, ports (bonds included) and rings.
//!
//! This is the only module of `pmd` allowed to use `unsafe`; every unsafe
//! block states its invariants in a `// SAFETY:` comment. Raw pointers never
//! leave this module except inside owning wrappers ([`Mbuf`], [`Mempool`],
//! [`Port`], [`RingPort`]) that release their resource on drop.

mod bond;
mod carrier;
mod eal;
mod io;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use bond::{bond_status, is_bond, member_down, set_link, BondMember, BondStatus, BondWatch, Failover};
pub use carrier::{carrier_up, choose_primary, CarrierChange, CarrierMirror, CarrierPoll};
pub use eal::{eal_error, rdtsc, thread_register, thread_unregister, tsc_hz, Eal, EalError};
pub use io::DpdkIo;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortConfig, PortError, PortStats};
pub use ring::RingPort;
